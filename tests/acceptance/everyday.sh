#!/bin/sh
# The everyday Docker workflow, as a user types it, for any docker-compatible CLI.
#
#   CLI="docker" | CLI="ocikit --root DIR"   the command under test (word-split)
#   IMAGE      a busybox image in the plain registry (HOST:PORT/REPO:TAG)
#   REGISTRY   the plain registry (HOST:PORT);  TLS_REGISTRY, TLS_USER, TLS_PASSWORD: the TLS one
#   NS         the repository namespace this run pushes to (runs with different CLIs stay apart)
#   TLS_FLAGS  extra flags for commands that reach the TLS registry (none: trust is configuration,
#              docker's daemon.json insecure-registries, ocikit's registries.conf insecure = true)
#   SUBNET     a free /24 for the network;  PORT: a free TCP port of 127.0.0.1
#   OUT        where each step's stdout, stderr and exit code go (NN-STEP.out, .err, .rc)
#
# Every step is recorded whatever its outcome; tests/integration/test_ocikit_acceptance.py runs
# this with docker (a private dockerd) and with ocikit and compares what a user sees.
set -u
: "${CLI:?}" "${IMAGE:?}" "${REGISTRY:?}" "${TLS_REGISTRY:?}" "${TLS_USER:?}" "${TLS_PASSWORD:?}" "${SUBNET:?}"
: "${PORT:?}" "${OUT:?}" "${NS:?}"
TLS_FLAGS=${TLS_FLAGS:-}
mkdir -p "$OUT"
n=0
step() {  # step NAME COMMAND...: run it, keep what it printed and its exit code
  name=$1; shift
  n=$((n + 1))
  file=$(printf '%s/%02d-%s' "$OUT" "$n" "$name")
  "$@" >"$file.out" 2>"$file.err" </dev/null
  echo $? >"$file.rc"
}
step_in() {  # step_in NAME INPUT COMMAND...: the same with INPUT on stdin
  name=$1; input=$2; shift 2
  n=$((n + 1))
  file=$(printf '%s/%02d-%s' "$OUT" "$n" "$name")
  printf '%s\n' "$input" | "$@" >"$file.out" 2>"$file.err"
  echo $? >"$file.rc"
}
fetch() {  # the page the published port serves, after waiting up to 10 s for it
  for _ in $(seq 100); do
    curl -fsS --max-time 2 "http://127.0.0.1:$PORT/" 2>/dev/null && return 0
    sleep 0.1
  done
  return 7
}
IMG2="$REGISTRY/$NS/web"

step pull                 $CLI pull -q "$IMAGE"
step network-create       $CLI network create --subnet "$SUBNET" accnet
step volume-create        $CLI volume create shared
step run-hello            $CLI run --rm "$IMAGE" echo hello
step run-exit-3           $CLI run --rm "$IMAGE" sh -c 'exit 3'
step run-missing-command  $CLI run --rm "$IMAGE" no-such-command
step run-named            $CLI run --name once "$IMAGE" sh -c 'echo to-stdout; echo to-stderr >&2'
step logs-of-foreground   $CLI logs once
step rm-exited            $CLI rm once
step run-detached         $CLI run -d --name web --network accnet -p "127.0.0.1:$PORT:80" -v shared:/www "$IMAGE" \
                               sh -c 'echo hello-web > /www/index.html; echo web-started; exec httpd -f -p 80 -h /www'
step curl                 fetch
step run-second-on-volume $CLI run --rm -v shared:/data "$IMAGE" cat /data/index.html
step logs                 $CLI logs web
step exec                 $CLI exec web cat /www/index.html
step exec-change          $CLI exec web sh -c 'echo changed > /www/index.html; echo committed > /etc/motd'
step exec-missing         $CLI exec web no-such-command
step port                 $CLI port web
step stop                 $CLI stop -t 1 web
step ps-a-stopped         $CLI ps -a --filter name=web --format '{{.Names}} {{.Status}}'
step start                $CLI start web
step ps-running           $CLI ps --format '{{.Names}} {{.Image}} {{.Ports}}'
step curl-after-start     fetch
step commit               $CLI commit web "$IMG2:1"
step tag                  $CLI tag "$IMG2:1" "$IMG2:2"
step push                 $CLI push "$IMG2:2"
step rmi-pushed           $CLI rmi "$IMG2:2"
step pull-pushed          $CLI pull -q "$IMG2:2"
step run-pulled           $CLI run --rm "$IMG2:2" cat /etc/motd
step rm-running           $CLI rm web
step rm-f                 $CLI rm -f web
step volume-rm            $CLI volume rm shared
step volume-ls            $CLI volume ls -q
step_in login "$TLS_PASSWORD" $CLI login $TLS_FLAGS -u "$TLS_USER" --password-stdin "$TLS_REGISTRY"
step tag-tls              $CLI tag "$IMAGE" "$TLS_REGISTRY/$NS/busybox:1"
step push-tls             $CLI push $TLS_FLAGS "$TLS_REGISTRY/$NS/busybox:1"
step save                 $CLI save -o "$OUT/saved.tar" "$IMAGE"
step rmi-tls              $CLI rmi "$TLS_REGISTRY/$NS/busybox:1" "$IMG2:1" "$IMG2:2"
step rmi                  $CLI rmi "$IMAGE"
step images-after-rmi     $CLI images -q "$IMAGE"
step load                 $CLI load -i "$OUT/saved.tar"
step run-loaded           $CLI run --rm "$IMAGE" echo loaded
step logout               $CLI logout "$TLS_REGISTRY"
step network-rm           $CLI network rm accnet
step ps-a-end             $CLI ps -aq
exit 0
