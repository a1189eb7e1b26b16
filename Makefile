# The front door. `make convert` and `make test` set up everything they need themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Conversion inputs (see `python -m convert --help` for every flag; ARGS passes more).
DATA ?=
OUT ?= artifacts/vgg16_cats_dogs
WEIGHTS ?= auto
INPUT_SIZE ?=
CALIB ?= 200
ARGS ?=
# Bring your own model (nothing is trained): MODEL=whole.h5|.keras, or HEAD_MODEL=head.h5 on ARCH/WEIGHTS at
# INPUT_SIZE; PREPROCESS=caffe|rescale|tf|torch|raw (required with either); OUTPUT, LABELS (see README).
MODEL ?=
HEAD_MODEL ?=
PREPROCESS ?=
OUTPUT ?=
LABELS ?=
# make drift: a folder of your own photos (class subfolders named as the labels give accuracies too).
IMAGES ?=
ARCH ?=
# Extra pytest arguments, e.g. PYTEST_ARGS="-k drift -x".
PYTEST_ARGS ?=
# make test's pytest-xdist workers (0: one process, no workers).
TEST_JOBS ?= 2
# --dist loadfile: a file's tests share a worker (and its module fixtures); --no-loadscope-reorder keeps the
# order tests/conftest.py gives (the longest slow files first). Not loadgroup: with pytest 9.2 it silently
# stops grouping (pytest-dev/pytest-xdist#1386).
XDIST_ARGS = -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder
# The camera loop: extra flags for `python -m runtime` (see `make camera-help`), e.g. CAMERA_ARGS="--serve 127.0.0.1:8080".
CAMERA_ARGS ?=
# The stand-in camera: a short video built from the shared test photos.
DEMO_IMAGES ?= $(if $(DATA),$(DATA)/test,../shared/datasets/cats_vs_dogs/test)
DEMO_VIDEO ?= artifacts/demo_camera.avi

# The K210 toolchain (nncase 1.9 in CPython 3.8-3.10): K210_ROUTE=auto|venv|debootstrap.
K210_DIR ?= .k210
K210_ROUTE ?= auto
# Extra flags for `python -m convert.k210` (make kmodel), e.g. KMODEL_ARGS="--width 0.5 --input-size 160".
KMODEL_ARGS ?=
# The K210 firmware (make firmware / flash / kmodel-riscv-check): the board (kflash's -B name), its serial
# port, SRAM=1 to load without writing the flash, N test images for the RISC-V check, the bare-metal
# toolchain and build folder, and the upstream sources (fetched at their pinned commits when absent).
BOARD ?= dan
PORT ?=
SRAM ?=
N ?= 20
FIRMWARE_CACHE ?= $(K210_DIR)/firmware
K210_VENDOR ?= ../shared/vendor/k210
FIRMWARE_VENDOR_ARG = $(if $(wildcard $(K210_VENDOR)),--vendor "$(K210_VENDOR)")
# make pi-check: the Debian bookworm arm64 roots' cache (outside the repository), the device install (apt:
# apt's OpenCV/NumPy/Pillow as firmware_notes/raspberry_pi.md tells a Pi user, plus the PyPI route; pypi: a
# minimal root with the PyPI route only, which make test builds), the Pi whose CPU qemu emulates, and the
# video frames and photos compared (taken from DEMO_IMAGES).
PI_ROOT ?= $(HOME)/.cache/vgg-edge/pi-root
PI_ROUTE ?= apt
PI_BOARD ?= pi4
PI_FRAMES ?= 50
PI_IMAGES ?= 20
# make student: the distilled variants, WIDTH@SIZE each, space-separated (default one: WIDTH at INPUT_SIZE,
# the K210 path's x0.375 at 224); several are built in one run and timed together, e.g.
# VARIANTS="0.375@224 0.25@160". STUDENT_ARGS: more flags of `python -m convert.pi.student`.
WIDTH ?= 0.375
VARIANTS ?= $(WIDTH)@$(or $(INPUT_SIZE),224)
STUDENT_ARGS ?=
# make firmware-toolchain's steps (make test and make test-firmware run them too, failures tolerated)
FIRMWARE_TOOLCHAIN = scripts/k210_firmware_toolchain.sh "$(FIRMWARE_CACHE)" && \
	$(PY) -m convert.k210.firmware --libraries --cache "$(FIRMWARE_CACHE)" $(FIRMWARE_VENDOR_ARG)

.PHONY: help venv convert drift test test-fast bench bench-runtime camera camera-help demo-video pi-root pi-check student k210-toolchain kmodel kmodel-report firmware-toolchain firmware flash kmodel-riscv-check test-firmware clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip==25.3"
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[convert,test]'
	touch $@

venv: $(STAMP)  ## create .venv with the pinned conversion + test dependencies

convert: $(STAMP)  ## train (or bring: MODEL / HEAD_MODEL + PREPROCESS), quantize and check into OUT (DATA, OUT, WEIGHTS, INPUT_SIZE, CALIB, ARGS)
	$(PY) -m convert $(if $(DATA),--data "$(DATA)") --out "$(OUT)" --weights "$(WEIGHTS)" \
		$(if $(INPUT_SIZE),--input-size $(INPUT_SIZE)) --calib $(CALIB) $(if $(ARCH),--arch $(ARCH)) \
		$(if $(MODEL),--model "$(MODEL)") $(if $(HEAD_MODEL),--head-model "$(HEAD_MODEL)") \
		$(if $(PREPROCESS),--preprocess $(PREPROCESS)) $(if $(OUTPUT),--output $(OUTPUT)) \
		$(if $(LABELS),--labels "$(LABELS)") $(ARGS)

test: $(STAMP)  ## the whole suite: fast unit tests, the slow real-VGG16 drift tests, the K210 firmware builds, the arm64 runtime check (builds the K210 toolchains and a minimal arm64 root too)
	@# Without the toolchain the nncase tests skip and say why (.k210/unavailable); the suite still runs.
	-@K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	@# The firmware toolchain and its kmodel-independent libraries, built once (the firmware tests skip and say
	@# why where they cannot be had).
	-@$(FIRMWARE_TOOLCHAIN)
	@# A minimal arm64 root with the PyPI route, for the cheap form of make pi-check (its test skips and says
	@# why where it cannot be built).
	-@scripts/pi_root.sh "$(PI_ROOT)" pypi
	K210_DIR="$(abspath $(K210_DIR))" FIRMWARE_CACHE="$(abspath $(FIRMWARE_CACHE))" PI_ROOT="$(abspath $(PI_ROOT))" \
		$(PY) -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

test-firmware: $(STAMP)  ## only the K210 firmware build tests: a tiny kmodel's image, its runtime on qemu RISC-V, the RAM overflow (seconds once make firmware-toolchain built the libraries)
	-@K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	@# Without the bare-metal toolchain the tests skip and say why ($(FIRMWARE_CACHE)/unavailable).
	-@$(FIRMWARE_TOOLCHAIN)
	K210_DIR="$(abspath $(K210_DIR))" FIRMWARE_CACHE="$(abspath $(FIRMWARE_CACHE))" $(PY) -m pytest -m firmware $(PYTEST_ARGS)

test-fast: $(STAMP)  ## unit tests only (about 4 minutes here)
	$(PY) -m pytest -m "not slow" $(XDIST_ARGS) $(PYTEST_ARGS)

drift: $(STAMP)  ## float vs int8 of OUT on your own photos: IMAGES=folder (class subfolders: accuracies too)
	@test -n "$(IMAGES)" || { echo "make drift: set IMAGES=folder (images, or class subfolders named as the labels)" >&2; exit 2; }
	$(PY) -m convert.drift --artifacts "$(OUT)" --images "$(IMAGES)"

bench: $(STAMP)  ## latency (median of 30), sizes and peak memory of float Keras, float and int8 TFLite -> OUT/bench.json
	@test -f "$(OUT)/model_int8.tflite" || $(MAKE) convert
	$(PY) -m convert.bench --artifacts "$(OUT)"

$(DEMO_VIDEO): | $(STAMP)
	$(PY) -m runtime.make_video --images "$(DEMO_IMAGES)" --out "$@"

demo-video: $(DEMO_VIDEO)  ## build the stand-in camera video (40 shared test photos, 600 frames, 640x480 MJPG)

camera: $(STAMP) $(DEMO_VIDEO)  ## run the loop on the Pi camera, else webcam 0, else the demo video (CAMERA_ARGS)
	@test -f "$(OUT)/model_int8.tflite" || $(MAKE) convert
	$(PY) -m runtime --model "$(OUT)" --source auto --fallback-source "$(DEMO_VIDEO)" $(CAMERA_ARGS)

camera-help: $(STAMP)  ## every flag of the camera loop (python -m runtime --help)
	$(PY) -m runtime --help

bench-runtime: $(STAMP) $(DEMO_VIDEO)  ## loop cost per stage, loop FPS vs 1/invoke, int8 latency at 1/2/all threads -> OUT/bench_runtime.json
	@test -f "$(OUT)/model_int8.tflite" || $(MAKE) convert
	$(PY) -m runtime.bench --model "$(OUT)" --video "$(DEMO_VIDEO)"

pi-root:  ## Raspberry Pi: a Debian bookworm arm64 root with the device side installed (PI_ROUTE=apt|pypi), built once into PI_ROOT
	scripts/pi_root.sh "$(PI_ROOT)" $(PI_ROUTE)

pi-check: $(STAMP)  ## Raspberry Pi: OUT's int8 model in the camera loop on the arm64 root (qemu, PI_BOARD's CPU) vs here, PI_FRAMES video frames + PI_IMAGES photos -> OUT/pi_check.json
	@test -f "$(OUT)/model_int8.tflite" || $(MAKE) convert
	scripts/pi_root.sh "$(PI_ROOT)" $(PI_ROUTE)
	$(PY) -m convert.pi --artifacts "$(OUT)" --root "$(PI_ROOT)/bookworm-arm64-$(PI_ROUTE)" --board $(PI_BOARD) \
		--images "$(DEMO_IMAGES)" --frames $(PI_FRAMES) --image-count $(PI_IMAGES)

student: $(STAMP)  ## Pi-sized VGG16s: the K210 path's students (VARIANTS, or WIDTH and INPUT_SIZE) distilled from OUT's float model, full-int8 TFLite through make convert's gate, timed in one pass -> OUT/students/<variant>/ (STUDENT_ARGS)
	@test -f "$(OUT)/model_float.keras" || $(MAKE) convert
	$(PY) -m convert.pi.student --artifacts "$(OUT)" $(foreach v,$(VARIANTS),--variant $(v)) $(STUDENT_ARGS)

kmodel: $(STAMP)  ## K210: plan, distill and compile a VGG16-family kmodel from OUT's float model, check 100 test images in the simulator -> OUT/model_k210.kmodel (KMODEL_ARGS)
	@test -f "$(OUT)/model_float.keras" || $(MAKE) convert
	K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	$(PY) -m convert.k210 --artifacts "$(OUT)" --toolchain "$(K210_DIR)" $(KMODEL_ARGS)

kmodel-report: $(STAMP)  ## K210: the kmodel in nncase's simulator on all test images -> OUT/k210_report.{json,md} (12-33 min here)
	@test -f "$(OUT)/model_k210.kmodel" || $(MAKE) kmodel
	K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	$(PY) -m convert.k210.report --artifacts "$(OUT)" --toolchain "$(K210_DIR)"

firmware-toolchain: $(STAMP)  ## K210 firmware: Debian's riscv64-unknown-elf GCC, picolibc, cmake, ninja, qemu (apt-get), libstdc++, the SDK and nncase runtime libraries, built once -> FIRMWARE_CACHE
	$(FIRMWARE_TOOLCHAIN)

firmware: $(STAMP) firmware-toolchain  ## K210: OUT's kmodel + nncase 1.9 runtime + SDK -> OUT/k210_firmware/vgg_edge.{elf,bin,map}, sizes in k210_report (BOARD)
	@test -f "$(OUT)/model_k210.kmodel" || { echo "make firmware: no $(OUT)/model_k210.kmodel; run make kmodel first" >&2; exit 2; }
	K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	$(PY) -m convert.k210.firmware --artifacts "$(OUT)" --board $(BOARD) --cache "$(FIRMWARE_CACHE)" \
		--toolchain "$(K210_DIR)" $(FIRMWARE_VENDOR_ARG)

flash: $(STAMP)  ## K210: write OUT/k210_firmware/vgg_edge.bin to the board with kflash (PORT=/dev/ttyUSB0, BOARD; SRAM=1: load and run without writing the flash)
	$(PY) -m convert.k210.flash --artifacts "$(OUT)" $(if $(PORT),--port "$(PORT)") --board $(BOARD) $(if $(SRAM),--sram)

kmodel-riscv-check: $(STAMP) firmware-toolchain  ## K210: the firmware's nncase runtime on RISC-V (qemu virt, software KPU) vs nncase's simulator on N test images -> OUT/k210_riscv_check.json
	@test -f "$(OUT)/model_k210.kmodel" || { echo "make kmodel-riscv-check: no $(OUT)/model_k210.kmodel; run make kmodel first" >&2; exit 2; }
	K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)
	$(PY) -m convert.k210.riscv_check --artifacts "$(OUT)" -n $(N) --cache "$(FIRMWARE_CACHE)" \
		--toolchain "$(K210_DIR)" $(FIRMWARE_VENDOR_ARG)

k210-toolchain:  ## nncase 1.9 for the K210 in a CPython 3.8-3.10 venv, else a debootstrap bullseye root -> .k210/python
	K210_ROUTE=$(K210_ROUTE) scripts/k210_toolchain.sh $(K210_DIR)

clean:  ## remove build outputs (keeps .venv)
	rm -rf artifacts .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
