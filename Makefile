# Everything from a fresh clone on a machine with Python 3.11 and pip:
#   make demo   set up .venv, synthesise the demo dataset, prepare, train resnet34_msd, evaluate, predict
#   make test   set up .venv, run the test suite
#   make docker-check   build the CPU and GPU images, run synth/train/evaluate/predict inside each
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo
DEMO_EPOCHS ?= 8
# The demo set is small (20 clips of 10 s per genre): 3 validation clips per genre, MSD embedding only.
DEMO_SETTINGS := --set data.validation_per_genre=3 --set data.embeddings=MSD_musicnn
DOCKER_CHECK_IMAGES ?= cpu gpu

.PHONY: setup test demo bench lint-docker docker-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	# musicnn ships the pretrained weights; its metadata pins numpy<1.17, so no dependencies.
	$(BIN)/pip install --quiet --no-deps musicnn==0.1.0
	touch $@

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python -m gtzan_tf.synth --out $(DEMO)/gtzan --clips-per-genre 20 --seconds 10 --seed 0
	$(BIN)/python train.py --model resnet34_msd --data $(DEMO)/gtzan --out $(DEMO)/runs/resnet34_msd \
		--epochs $(DEMO_EPOCHS) --lr 1e-3 --quiet $(DEMO_SETTINGS)
	$(BIN)/python evaluate.py --run $(DEMO)/runs/resnet34_msd --data $(DEMO)/gtzan
	$(BIN)/python predict.py --model $(DEMO)/runs/resnet34_msd $(DEMO)/gtzan/wav/jazz/jazz.00000.wav

bench: setup
	# only for timing the original musicnn code beside ours (benchmarks/musicnn.py)
	$(BIN)/pip install --quiet --no-deps "tf_keras==2.21.*"
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/frontend_batch.py
	$(BIN)/python benchmarks/musicnn.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/multiworker.py
	$(BIN)/python benchmarks/predict.py

lint-docker: setup
	$(BIN)/hadolint --failure-threshold warning docker/Dockerfile
	$(BIN)/shellcheck docker/check.sh .ci/run

# Build gtzan-tf:cpu and gtzan-tf:gpu (docker, else podman + buildah) and run the project inside each.
docker-check:
	docker/check.sh $(DOCKER_CHECK_IMAGES)

clean:
	rm -rf $(DEMO) .pytest_cache
