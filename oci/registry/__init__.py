"""Talking to OCI and Docker registries: one HTTP code path for pulling and pushing.

* `http`: connections (keep-alive pool per host, TLS with custom CAs, timeouts, retries
  with backoff honouring Retry-After, size caps);
* `credentials`: Docker `config.json`, containers `auth.json`, credential helpers;
* `auth`: WWW-Authenticate challenges, basic and bearer token authentication;
* `client`: the distribution-spec API of a repository (manifests, blobs, tags, referrers,
  uploads);
* `pull`: copying an image from a registry or another layout into a layout.
"""
