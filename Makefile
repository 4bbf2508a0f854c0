# slitstep: the two commands of the README.
#   make demo  - install missing Debian packages, build (Release), run `slitstep demo`
#   make test  - install missing Debian packages, build (Release), run the whole CTest suite
.PHONY: demo test build deps bench clean

PRESET ?= release
BUILD_DIR := build/$(PRESET)

deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) > /dev/null
	@cmake --build --preset $(PRESET)

demo: build
	$(BUILD_DIR)/apps/slitstep demo -o slitstep-demo

test: build
	ctest --preset $(PRESET)

bench: build
	$(BUILD_DIR)/bench/slitstep_bench

clean:
	rm -rf build
