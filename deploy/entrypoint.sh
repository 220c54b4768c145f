#!/bin/sh
# `segue serve` configured through environment variables: the container's entrypoint.
#
#   SEGUE_MODEL_URI       the model to serve (required): churn@champion, models:/churn/3, ...
#   SEGUE_HOST            interface to listen on (the image sets 0.0.0.0)
#   SEGUE_PORT            port to listen on (the image sets 8000)
#   SEGUE_WORKERS         --workers          SEGUE_POLL_S          --poll-s
#   SEGUE_MAX_BATCH_SIZE  --max-batch-size   SEGUE_MAX_LATENCY_MS  --max-latency-ms
#   SEGUE_MAX_BODY_MB     --max-body-mb      SEGUE_BODY_TIMEOUT    --body-timeout
#   SEGUE_LOG_FLUSH_S     --log-flush-s      SEGUE_NAME            --name
#   SEGUE_API_KEY_FILE    --api-key-file
#   SEGUE_LOG             false: --no-log    SEGUE_AUTH            true: --auth
#
# plus the stores' own variables, read by Segue itself: SEGUE_STORE_URI, SEGUE_ARTIFACT_URI,
# SEGUE_HOME, or SEGUE_TRACKING_URI and SEGUE_TOKEN to work through a team server. A variable
# left unset or empty keeps `segue serve`'s default. Arguments that begin with "-" come after
# these, so they win (`docker run IMAGE --workers 4`); any other first argument is run as a
# command instead (`docker run IMAGE segue models list`).
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ -z "${SEGUE_MODEL_URI:-}" ]; then
    echo "error: set SEGUE_MODEL_URI to the model to serve, e.g. churn@champion" >&2
    exit 2
fi

given=$#  # the arguments given go last: rotated to the end once the rest is appended
set -- "$@" serve "$SEGUE_MODEL_URI"
for pair in HOST:--host PORT:--port WORKERS:--workers POLL_S:--poll-s \
    MAX_BATCH_SIZE:--max-batch-size MAX_LATENCY_MS:--max-latency-ms \
    MAX_BODY_MB:--max-body-mb BODY_TIMEOUT:--body-timeout LOG_FLUSH_S:--log-flush-s \
    NAME:--name API_KEY_FILE:--api-key-file; do
    eval "value=\${SEGUE_${pair%%:*}:-}"
    if [ -n "$value" ]; then
        set -- "$@" "${pair#*:}" "$value"
    fi
done

case "$(printf '%s' "${SEGUE_LOG:-}" | tr '[:upper:]' '[:lower:]')" in
    "" | 1 | true | yes | on) ;;
    0 | false | no | off) set -- "$@" --no-log ;;
    *) echo "error: SEGUE_LOG must be true or false, got '$SEGUE_LOG'" >&2; exit 2 ;;
esac
case "$(printf '%s' "${SEGUE_AUTH:-}" | tr '[:upper:]' '[:lower:]')" in
    "" | 0 | false | no | off) ;;
    1 | true | yes | on) set -- "$@" --auth ;;
    *) echo "error: SEGUE_AUTH must be true or false, got '$SEGUE_AUTH'" >&2; exit 2 ;;
esac

while [ "$given" -gt 0 ]; do
    set -- "$@" "$1"
    shift
    given=$((given - 1))
done
exec segue "$@"
