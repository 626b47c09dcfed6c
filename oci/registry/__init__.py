"""Talking to OCI and Docker registries: one HTTP code path for pulling and pushing.

* `urls`, `wire`, `proxy`: URLs, HTTP/1.1 framing with caps for hostile servers, HTTP proxies;
* `http`: the transport (keep-alive pool per host, timeouts, retries with backoff honouring
  Retry-After, which scheme a host gets); `tls`: what a TLS connection trusts and presents;
* `credentials`: Docker `config.json`, containers `auth.json`, credential helpers;
* `auth`: WWW-Authenticate challenges, basic and bearer token authentication;
* `session`: a registry host's requests, authorized as its challenges ask;
* `client`: the distribution-spec API of a repository (manifests, blobs, tags, referrers,
  uploads); `manifests`: manifests and indexes as served, their digest and media type;
* `sources`: where a pull copies from, one small interface: a registry's repository or
  another layout; `pull`: the copy into a layout; `push`: a layout's image to a repository;
* `registries_conf`: registries.conf (mirrors, insecure and blocked registries, aliases);
  `locations`: which repositories of a registry hold which blob; `workers`: the transfer threads.
"""
