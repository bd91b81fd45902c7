#!/usr/bin/env bash
# Cloud TPU VMs and pod slices for tpu_convrnn: create, set up, run, follow, delete.
# Run `launch/tpu.sh --help` for the commands and settings.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu.sh [options] COMMAND [-- extra arguments for python -m tpu_convrnn.main]

Commands:
  create   create the TPU VM or pod slice (on demand; --spot; or --queued through queued resources)
  setup    copy this checkout to every worker and install it with the matching
           tensorflow + tensorflow-tpu pair
  run      start `python -m tpu_convrnn.main` on every worker, detached (log: tpu_convrnn.log in the home folder);
           a restart with the same --model-dir resumes from its newest checkpoint
  logs     follow the log of one worker (--worker, default 0)
  ssh      open a shell on one worker, or run the words after -- there
  search   start one architecture-search worker (`python -m tpu_convrnn.search run`) on every
           TPU VM of the fleet, all against one study storage (log: tpu_convrnn_search.log)
  status   describe the TPU (and its queued resource)
  delete   delete the TPU (and its queued resource)

Settings (flag, or environment variable; flags win):
  --project P          TPU_PROJECT        Google Cloud project                 (required)
  --zone Z             TPU_ZONE           e.g. us-central2-b                   (required)
  --name N             TPU_NAME           TPU VM / pod slice name              (required)
  --accelerator-type T TPU_ACCELERATOR    e.g. v4-8, v4-32                     (create)
  --runtime R          TPU_RUNTIME        default: tpu-vm-tf-<tf-version>-pjrt, with -pod for
                                          multi-host slices (v4-16 and larger)
  --tf-version V       TPU_TF_VERSION     tensorflow and tensorflow-tpu version (default 2.20.0)
  --spot               TPU_SPOT=1         spot (preemptible) capacity
  --queued             TPU_QUEUED=1       create through `queued-resources` (waits for capacity)
  --model-dir D        TPU_MODEL_DIR      gs:// folder for checkpoints and metrics  (run)
  --gin-file F         TPU_GIN_FILES      repeatable; env: several, separated by spaces
                                          (default gin/reciprocal.gin)
  --gin-param B        TPU_GIN_PARAMS     repeatable; env: one binding per line
  --mode M             TPU_MODE           train | eval | train_and_eval (default train_and_eval)
  --worker W           TPU_WORKER         worker for logs/ssh (default 0)
  --fleet K            TPU_FLEET          K single-host TPU VMs NAME-0 .. NAME-(K-1), created
                                          as one queued resource (create --queued), set up and
                                          deleted together; `search` starts a worker on each
  --space F            TPU_SEARCH_SPACE   search space gin file (search; e.g.
                                          gin/search/median_cell.gin)
  --storage U          TPU_SEARCH_STORAGE study storage URL without password (search), e.g.
                                          postgresql://search@10.128.0.5/search
  --storage-password-file P               local file with its password; copied to each VM
                       TPU_SEARCH_PASSWORD_FILE  (never put on a command line)
  --trials-dir D       TPU_SEARCH_TRIALS  gs:// folder of the trials' checkpoints (search)
  --n-trials N         TPU_SEARCH_TRIALS_N  finished trials at which the workers stop (search)
  --dry-run            TPU_DRY_RUN=1      print the gcloud commands instead of running them
  -h, --help                              this text

Example (a v4-32 pod slice on spot capacity):
  export TPU_PROJECT=my-project TPU_ZONE=us-central2-b TPU_NAME=rgc TPU_ACCELERATOR=v4-32
  launch/tpu.sh --spot create
  launch/tpu.sh setup
  launch/tpu.sh run --model-dir gs://my-bucket/runs/rgc \
      --gin-param "data.train_pattern='gs://my-bucket/imagenet/train-*'" \
      --gin-param "data.eval_pattern='gs://my-bucket/imagenet/validation-*'"
  launch/tpu.sh logs
  launch/tpu.sh delete

Example (an architecture search on 8 v4-8 TPU VMs against one PostgreSQL server):
  export TPU_PROJECT=my-project TPU_ZONE=us-central2-b TPU_NAME=search TPU_ACCELERATOR=v4-8
  launch/tpu.sh --fleet 8 --queued --spot create
  launch/tpu.sh --fleet 8 setup
  launch/tpu.sh --fleet 8 search --space gin/search/median_cell.gin --n-trials 2000 \
      --storage postgresql://search@10.128.0.5/search --storage-password-file ~/.search_pw \
      --trials-dir gs://my-bucket/search/trials
  launch/tpu.sh --fleet 8 --worker 3 logs
  launch/tpu.sh --fleet 8 --queued delete
EOF
}

die() { echo "launch/tpu.sh: error: $*" >&2; exit 2; }

PROJECT=${TPU_PROJECT:-}
ZONE=${TPU_ZONE:-}
NAME=${TPU_NAME:-}
ACCELERATOR=${TPU_ACCELERATOR:-}
RUNTIME=${TPU_RUNTIME:-}
TF_VERSION=${TPU_TF_VERSION:-2.20.0}
SPOT=${TPU_SPOT:-0}
QUEUED=${TPU_QUEUED:-0}
MODEL_DIR=${TPU_MODEL_DIR:-}
MODE=${TPU_MODE:-train_and_eval}
WORKER=${TPU_WORKER:-0}
FLEET=${TPU_FLEET:-1}
SPACE=${TPU_SEARCH_SPACE:-}
STORAGE=${TPU_SEARCH_STORAGE:-}
PASSWORD_FILE=${TPU_SEARCH_PASSWORD_FILE:-}
TRIALS_DIR=${TPU_SEARCH_TRIALS:-}
N_TRIALS=${TPU_SEARCH_TRIALS_N:-}
DRY_RUN=${TPU_DRY_RUN:-0}
GIN_FILES=()
GIN_PARAMS=()
COMMAND=""
EXTRA=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --project) need_value "$@"; PROJECT=$2; shift 2 ;;
    --zone) need_value "$@"; ZONE=$2; shift 2 ;;
    --name) need_value "$@"; NAME=$2; shift 2 ;;
    --accelerator-type) need_value "$@"; ACCELERATOR=$2; shift 2 ;;
    --runtime) need_value "$@"; RUNTIME=$2; shift 2 ;;
    --tf-version) need_value "$@"; TF_VERSION=$2; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --model-dir) need_value "$@"; MODEL_DIR=$2; shift 2 ;;
    --gin-file) need_value "$@"; GIN_FILES+=("$2"); shift 2 ;;
    --gin-param) need_value "$@"; GIN_PARAMS+=("$2"); shift 2 ;;
    --mode) need_value "$@"; MODE=$2; shift 2 ;;
    --worker) need_value "$@"; WORKER=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --fleet) need_value "$@"; FLEET=$2; shift 2 ;;
    --space) need_value "$@"; SPACE=$2; shift 2 ;;
    --storage) need_value "$@"; STORAGE=$2; shift 2 ;;
    --storage-password-file) need_value "$@"; PASSWORD_FILE=$2; shift 2 ;;
    --trials-dir) need_value "$@"; TRIALS_DIR=$2; shift 2 ;;
    --n-trials) need_value "$@"; N_TRIALS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z "$COMMAND" ]] || die "two commands given: $COMMAND and $1"; COMMAND=$1; shift ;;
  esac
done

if [[ ${#GIN_FILES[@]} -eq 0 ]]; then
  read -r -a GIN_FILES <<< "${TPU_GIN_FILES:-gin/reciprocal.gin}"
fi
if [[ ${#GIN_PARAMS[@]} -eq 0 && -n "${TPU_GIN_PARAMS:-}" ]]; then
  mapfile -t GIN_PARAMS <<< "${TPU_GIN_PARAMS}"
fi

[[ -n "$COMMAND" ]] || { usage >&2; die "no command given"; }

require() {  # require VAR "what it is" "--flag / ENV"
  [[ -n "${!1}" ]] || die "$COMMAND needs $2: set $3"
}
require PROJECT "a Google Cloud project" "--project or TPU_PROJECT"
require ZONE "a zone" "--zone or TPU_ZONE"
require NAME "a TPU name" "--name or TPU_NAME"

# The TPU runtime: pod slices (more than one host, i.e. more than 8 TensorCores on v4) need the
# -pod image.
if [[ -z "$RUNTIME" ]]; then
  RUNTIME="tpu-vm-tf-${TF_VERSION}-pjrt"
  cores=${ACCELERATOR##*-}
  if [[ "$cores" =~ ^[0-9]+$ && "$cores" -gt 8 ]]; then
    RUNTIME="tpu-vm-tf-${TF_VERSION}-pod-pjrt"
  fi
fi

# Runs (or, with --dry-run, prints) one command, every word quoted for a shell.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

LOCATION=(--project "$PROJECT" --zone "$ZONE")
REMOTE_DIR=tpu_convrnn           # remote paths are relative to the home folder,
LOG=tpu_convrnn.log              # where the remote commands start

# One string that the remote bash turns back into exactly these words.
quote_words() { printf '%q ' "$@" | sed 's/ $//'; }

[[ "$FLEET" =~ ^[1-9][0-9]*$ ]] || die "--fleet must be a positive number (got '$FLEET')"
# The TPU VMs: NAME alone, or NAME-0 .. NAME-(K-1) for a fleet (queued resources' node names).
NODES=("$NAME")
if [[ "$FLEET" -gt 1 ]]; then
  NODES=()
  for ((i = 0; i < FLEET; i++)); do NODES+=("$NAME-$i"); done
fi

ssh_all() {
  local node
  for node in "${NODES[@]}"; do
    run gcloud compute tpus tpu-vm ssh "$node" "${LOCATION[@]}" --worker=all --command "$1"
  done
}

case "$COMMAND" in
  create)
    require ACCELERATOR "an accelerator type" "--accelerator-type or TPU_ACCELERATOR"
    spot=()
    [[ "$SPOT" == 1 ]] && spot=(--spot)
    if [[ "$QUEUED" == 1 ]]; then
      nodes=(--node-id "$NAME")
      [[ "$FLEET" -gt 1 ]] && nodes=(--node-count "$FLEET" --node-prefix "$NAME")
      run gcloud compute tpus queued-resources create "$NAME" "${LOCATION[@]}" \
        "${nodes[@]}" --accelerator-type "$ACCELERATOR" --runtime-version "$RUNTIME" \
        "${spot[@]}"
    elif [[ "$FLEET" -gt 1 ]]; then
      die "a fleet (--fleet $FLEET) is created as one queued resource: add --queued"
    else
      run gcloud compute tpus tpu-vm create "$NAME" "${LOCATION[@]}" \
        --accelerator-type "$ACCELERATOR" --version "$RUNTIME" "${spot[@]}"
    fi
    ;;
  setup)
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    archive=$(mktemp -d)/tpu_convrnn.tar.gz
    if [[ "$DRY_RUN" == 1 ]]; then
      echo "(cd $(printf '%q' "$repo") && git ls-files -z | tar --null -czf $(printf '%q' "$archive") -T -)"
    else
      (cd "$repo" && git ls-files -z | tar --null -czf "$archive" -T -)
    fi
    for node in "${NODES[@]}"; do
      run gcloud compute tpus tpu-vm scp "$archive" "$node:tpu_convrnn.tar.gz" "${LOCATION[@]}" \
        --worker=all
    done
    install="mkdir -p $REMOTE_DIR && tar -xzf tpu_convrnn.tar.gz -C $REMOTE_DIR"
    install+=" && pip install -q $(quote_words "tensorflow==$TF_VERSION" "tensorflow-tpu==$TF_VERSION")"
    install+=" -f https://storage.googleapis.com/libtpu-tf-releases/index.html"
    install+=" && pip install -q -e '${REMOTE_DIR}[search]'"
    install+=" && python3 -c 'import tensorflow as tf; print(tf.__version__, tf.config.list_logical_devices(\"TPU\")[:1])'"
    ssh_all "$install"
    ;;
  run)
    require MODEL_DIR "a model dir" "--model-dir or TPU_MODEL_DIR"
    [[ "$MODEL_DIR" == gs://* ]] || die "--model-dir must be a gs:// folder (got '$MODEL_DIR'): \
every worker writes there, and a TPU VM's disk is lost on preemption or deletion"
    args=(python3 -m tpu_convrnn.main --tpu="$NAME" --mode="$MODE" --model_dir="$MODEL_DIR")
    for f in "${GIN_FILES[@]}"; do args+=(--gin_file="$f"); done
    for p in "${GIN_PARAMS[@]}"; do args+=(--gin_param="$p"); done
    args+=("${EXTRA[@]}")
    ssh_all "cd $REMOTE_DIR && nohup $(quote_words "${args[@]}") > ../$LOG 2>&1 < /dev/null &"
    echo "started on every worker of $NAME; follow with: launch/tpu.sh logs" >&2
    ;;
  search)
    require SPACE "a search space" "--space or TPU_SEARCH_SPACE"
    require STORAGE "a study storage URL" "--storage or TPU_SEARCH_STORAGE"
    require TRIALS_DIR "a trials folder" "--trials-dir or TPU_SEARCH_TRIALS"
    require N_TRIALS "a number of trials" "--n-trials or TPU_SEARCH_TRIALS_N"
    [[ "$TRIALS_DIR" == gs://* ]] || die "--trials-dir must be a gs:// folder (got \
'$TRIALS_DIR'): a trial re-queued after a preemption resumes on another VM from there"
    [[ "$STORAGE" != *://*:*@* ]] || die "--storage must not hold a password (it would show \
in process lists and logs): use --storage-password-file"
    for i in "${!NODES[@]}"; do
      args=(python3 -m tpu_convrnn.search run --space="$SPACE" --study_dir=search_study
            --storage="$STORAGE" --trials_dir="$TRIALS_DIR" --n_trials="$N_TRIALS"
            --worker_index="$i" --tpu=local)
      if [[ -n "$PASSWORD_FILE" ]]; then
        [[ -r "$PASSWORD_FILE" || "$DRY_RUN" == 1 ]] || die "cannot read $PASSWORD_FILE"
        run gcloud compute tpus tpu-vm scp "$PASSWORD_FILE" "${NODES[$i]}:.search_password" \
          "${LOCATION[@]}" --worker=0
        args+=(--storage_password_file=../.search_password)
      fi
      run gcloud compute tpus tpu-vm ssh "${NODES[$i]}" "${LOCATION[@]}" --worker=0 \
        --command "cd $REMOTE_DIR && nohup $(quote_words "${args[@]}") > ../tpu_convrnn_search.log 2>&1 < /dev/null &"
    done
    echo "started ${#NODES[@]} search worker(s); follow one with: launch/tpu.sh --fleet $FLEET --worker I logs" >&2
    ;;
  logs)
    # a pod's host (--worker), or a fleet's VM NAME-<worker> and its search worker's log
    node=$NAME host=$WORKER log=$LOG
    if [[ "$FLEET" -gt 1 ]]; then node="$NAME-$WORKER" host=0 log=tpu_convrnn_search.log; fi
    run gcloud compute tpus tpu-vm ssh "$node" "${LOCATION[@]}" --worker="$host" \
      --command "tail -n +1 -F $log"
    ;;
  ssh)
    if [[ ${#EXTRA[@]} -gt 0 ]]; then
      run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$WORKER" \
        --command "$(quote_words "${EXTRA[@]}")"
    else
      run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$WORKER"
    fi
    ;;
  status)
    if [[ "$QUEUED" == 1 ]]; then
      run gcloud compute tpus queued-resources describe "$NAME" "${LOCATION[@]}"
    fi
    run gcloud compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}"
    ;;
  delete)
    if [[ "$QUEUED" == 1 ]]; then
      run gcloud compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
    else
      for node in "${NODES[@]}"; do
        run gcloud compute tpus tpu-vm delete "$node" "${LOCATION[@]}" --quiet
      done
    fi
    ;;
  *) die "unknown command '$COMMAND' (see --help)" ;;
esac
