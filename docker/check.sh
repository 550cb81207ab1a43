#!/usr/bin/env bash
# make docker-check: build the images of docker/Dockerfile and run the project inside each.
#
#   docker/check.sh [cpu] [gpu]        (default: both)
#
# Engine: docker when its daemon answers, else podman (build, chroot isolation) + buildah (run).
# Base: python:3.11-slim-bookworm; when it cannot be pulled, a Debian 12 stand-in (debootstrap +
# Debian's python3 3.11 in a venv at /usr/local), said in one line. In each image, as its non-root
# user (10001) with docker-check/<image>/ mounted at /runs: synthesise a small set, train.py
# --model resnet34_msd (2 epochs), evaluate.py, predict.py on an mp3, the serving SavedModel in a
# fresh process; the GPU image also shows its CUDA build and loads its CUDA and cuDNN libraries.
# Every step is timed and logged in docker-check/<image>/logs/; a failed step names itself and its log.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFICIAL_BASE=docker.io/library/python:3.11-slim-bookworm
STANDIN_BASE=localhost/gtzan-tf-standin:bookworm
CHECK=$PWD/docker-check
RUN_USER=10001:10001
FLAVOURS=("$@")
[ $# -gt 0 ] || FLAVOURS=(cpu gpu)

fail() { echo "error: $*" >&2; exit 1; }

for flavour in "${FLAVOURS[@]}"; do
    case $flavour in cpu | gpu) ;; *) fail "unknown image '$flavour' (cpu or gpu)" ;; esac
done
if command -v docker > /dev/null && docker info > /dev/null 2>&1; then
    ENGINE=docker
elif command -v podman > /dev/null && command -v buildah > /dev/null; then
    ENGINE=podman
else
    fail "make docker-check needs a running docker, or podman and buildah (Debian/Ubuntu: apt-get install podman buildah debootstrap)"
fi

mkdir -p "$CHECK/logs"
SUMMARY=$CHECK/summary.txt
: > "$SUMMARY"

# step NAME LOG COMMAND...: run COMMAND with its output in LOG; print and record its duration.
step() {
    local name=$1 log=$2 start=$SECONDS
    shift 2
    if ! "$@" > "$log" 2>&1; then
        tail -n 25 "$log" >&2
        fail "docker-check step '$name' failed after $((SECONDS - start)) s; its log: ${log#"$PWD"/}"
    fi
    printf '%-34s %6d s\n' "$name" $((SECONDS - start)) | tee -a "$SUMMARY"
}

standin_base() {
    local root=$CHECK/standin-rootfs
    rm -rf "$root"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata bookworm "$root"
    chroot "$root" python3 -m venv /usr/local
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | $ENGINE import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$STANDIN_BASE"
    rm -rf "$root"
}

if timeout 300 $ENGINE pull "$OFFICIAL_BASE" > "$CHECK/logs/pull-base.log" 2>&1; then
    BASE=$OFFICIAL_BASE
else
    BASE=$STANDIN_BASE
    echo "note: $OFFICIAL_BASE cannot be pulled (docker-check/logs/pull-base.log); building on a stand-in, $STANDIN_BASE: Debian 12 + Debian's Python 3.11 (debootstrap)"
    if ! $ENGINE image inspect "$STANDIN_BASE" > /dev/null 2>&1; then
        command -v debootstrap > /dev/null || fail "building the stand-in base needs debootstrap (apt-get install debootstrap)"
        step "stand-in base (debootstrap)" "$CHECK/logs/standin.log" standin_base
    fi
fi

# pip's CA bundle, when this machine's pip names one (a custom CA): given to
# the build's pip as two secrets, mounted only while pip runs; the image keeps no copy (checked below).
BUILD_SECRETS=()
PIP_CA=${PIP_CERT:-$(python3 -m pip config get global.cert 2> /dev/null || true)}
if [ -n "$PIP_CA" ] && [ -f "$PIP_CA" ]; then
    printf '[global]\ncert = /run/secrets/pip-ca\n' > "$CHECK/build-pip.conf"
    BUILD_SECRETS=(--secret "id=pip.conf,src=$CHECK/build-pip.conf" --secret "id=pip-ca,src=$PIP_CA")
    echo "note: pip's CA bundle $PIP_CA is passed to the builds as a secret"
fi

build() {  # build FLAVOUR
    local extras=""
    [ "$1" = gpu ] && extras=and-cuda
    if [ $ENGINE = docker ]; then
        DOCKER_BUILDKIT=1 docker build --network host "${BUILD_SECRETS[@]}" --build-arg "BASE_IMAGE=$BASE" \
            --build-arg "TENSORFLOW_EXTRAS=$extras" -f docker/Dockerfile -t "gtzan-tf:$1" .
    else
        podman build --isolation chroot --network host "${BUILD_SECRETS[@]}" --build-arg "BASE_IMAGE=$BASE" \
            --build-arg "TENSORFLOW_EXTRAS=$extras" -f docker/Dockerfile -t "gtzan-tf:$1" .
    fi
}

CONTAINER=""
remove_container() { [ -z "$CONTAINER" ] || buildah rm "$CONTAINER" > /dev/null; CONTAINER=""; }
trap remove_container EXIT

# in_image USER COMMAND...: run COMMAND in the image being checked, its runs folder at /runs.
in_image() {
    local user=$1
    shift
    if [ $ENGINE = docker ]; then
        docker run --rm --user "$user" -v "$RUNS:/runs" "$IMAGE" "$@"
    else
        buildah run --isolation chroot --user "$user" --volume "$RUNS:/runs" "$CONTAINER" -- "$@"
    fi
}

# No file of the image is the CA bundle or pip.conf the build was given.
no_build_secrets() {
    in_image 0:0 sh -c "test ! -e /etc/pip.conf && ! ls -A /run/secrets 2>/dev/null | grep -q ."
    [ ${#BUILD_SECRETS[@]} -gt 0 ] || return 0
    local size copies
    size=$(stat -c %s "$PIP_CA")
    copies=$(in_image 0:0 find / -xdev \( -path /proc -o -path /sys -o -path /runs \) -prune -o \
        -type f -size "${size}c" -exec sha256sum {} + | grep "^$(sha256sum < "$PIP_CA" | cut -d' ' -f1)" || true)
    [ -z "$copies" ] || { echo "copies of $PIP_CA in the image: $copies"; return 1; }
    echo "no /etc/pip.conf, nothing in /run/secrets, no file equal to $PIP_CA"
}

SERVE_MP3='
import json, sys
import librosa, tensorflow as tf
run, audio = sys.argv[1:]
rate = json.load(open(f"{run}/config.json"))["audio"]["sample_rate"]
waveform, _ = librosa.load(audio, sr=rate, mono=True)
out = tf.saved_model.load(f"{run}/serving").signatures["serving_default"](waveform=tf.constant(waveform))
best = int(tf.argmax(out["probabilities"]))
genre, probability = out["genres"][best].numpy().decode(), float(out["probabilities"][best])
print(f"serving/ (tf.saved_model.load): {audio}: {genre} {probability:.1%}")
'

CUDA_BUILD='
import glob, ctypes, os
import nvidia, tensorflow as tf
info = tf.sysconfig.get_build_info()
print("built with CUDA:", tf.test.is_built_with_cuda(), "| CUDA", info["cuda_version"], "| cuDNN", info["cudnn_version"])
assert tf.test.is_built_with_cuda()
root = list(nvidia.__path__)[0]
for name in ("cuda_runtime/lib/libcudart.so.12", "cudnn/lib/libcudnn.so.9", "cublas/lib/libcublasLt.so.12",
             "cublas/lib/libcublas.so.12", "cufft/lib/libcufft.so.11", "cusparse/lib/libcusparse.so.12",
             "cusolver/lib/libcusolver.so.11", "nccl/lib/libnccl.so.2"):
    ctypes.CDLL(os.path.join(root, name), mode=ctypes.RTLD_GLOBAL)
    print("loaded", name)
print("GPUs:", tf.config.list_physical_devices("GPU"), "| a matmul ran on", (tf.ones((2, 2)) @ tf.ones((2, 2))).device)
'

# With TensorFlow's log on: without a GPU it says why (cuInit) and falls back to the CPU, not fail.
show_cuda_build() {
    in_image "$RUN_USER" env TF_CPP_MIN_LOG_LEVEL=0 python -c "$CUDA_BUILD"
}

check_image() {  # check_image FLAVOUR
    local flavour=$1 logs=$CHECK/$1/logs run=/runs/runs/resnet34_msd
    IMAGE=gtzan-tf:$flavour
    RUNS=$CHECK/$flavour
    rm -rf "$RUNS"
    mkdir -p "$logs"
    chmod a+rwx "$RUNS"
    step "$flavour: build" "$logs/build.log" build "$flavour"
    printf '%-34s %6s GB\n' "$flavour: image size" \
        "$($ENGINE image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f", $1 / 1e9}')" | tee -a "$SUMMARY"
    [ $ENGINE = docker ] || CONTAINER=$(buildah from --pull-never "$IMAGE")
    step "$flavour: no build secrets kept" "$logs/secrets.log" no_build_secrets
    step "$flavour: synth (8 genres x 4 clips)" "$logs/synth.log" in_image "$RUN_USER" \
        python -m gtzan_tf.synth --out /runs/gtzan --clips-per-genre 4 --seconds 10 --seed 0
    step "$flavour: train.py resnet34_msd" "$logs/train.log" in_image "$RUN_USER" \
        python train.py --model resnet34_msd --data /runs/gtzan --out $run --epochs 2 --quiet \
        --set data.embeddings=MSD_musicnn
    step "$flavour: evaluate.py" "$logs/evaluate.log" in_image "$RUN_USER" \
        python evaluate.py --run $run --data /runs/gtzan
    step "$flavour: mp3 from a synth wav" "$logs/mp3.log" in_image "$RUN_USER" python -c \
        "import soundfile as sf; y, rate = sf.read('/runs/gtzan/wav/jazz/jazz.00000.wav'); sf.write('/runs/jazz.mp3', y, rate, format='MP3')"
    step "$flavour: predict.py on the mp3" "$logs/predict.log" in_image "$RUN_USER" \
        python predict.py --model $run /runs/jazz.mp3
    step "$flavour: serving/ in a fresh process" "$logs/serving.log" in_image "$RUN_USER" \
        python -c "$SERVE_MP3" $run /runs/jazz.mp3
    if [ "$flavour" = gpu ]; then
        step "gpu: CUDA build, CUDA/cuDNN load" "$logs/cuda.log" show_cuda_build
        grep -E "built with CUDA|GPUs:|cuInit|GPU will not be used|Cannot dlopen" "$logs/cuda.log" | sed 's/^/    /'
    fi
    tail -q -n 1 "$logs/predict.log" "$logs/serving.log" | sed 's/^/    /'
    remove_container
}

echo "engine: $ENGINE; base: $BASE; logs and runs: ${CHECK#"$PWD"/}/"
for flavour in "${FLAVOURS[@]}"; do
    check_image "$flavour"
done
echo "docker-check passed (${FLAVOURS[*]}); summary in ${SUMMARY#"$PWD"/}"
