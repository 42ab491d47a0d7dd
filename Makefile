# expgrid - one Makefile for the whole tree.
#
#   make            libraries into build/, programs into bin/
#   make deps       install missing Debian packages (apt-get, as root)
#   make check      deps, build, then every unit and integration test
#   make bench      benchmarks side by side with their alternatives
#   make demo       run the demo grid
#   make fuzz       libFuzzer targets (tests/fuzz), FUZZ_SECONDS each
#   make SANITIZE=address,undefined check     the same under sanitizers
#   make clean
#
# Each top-level part (common, kernels, grid, ...) is a static library built
# from every .c file in its folder; programs link the libraries they sit on.
# Tests: tests/unit/test_<module>.c and tests/integration/itest_<area>.c each
# become one binary under build/tests/, run by build/tests/runner.

CC      := gcc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Werror=vla
PKGS    := libuv msgpack openblas fftw3f libpq yaml-0.1 zlib libsodium jansson

BUILD   := build
ifneq ($(SANITIZE),)
BUILD   := build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
BIN     := bin

# Evaluated when a recipe runs, i.e. after `make deps` has installed them.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
MPI_CFLAGS = $(shell pkg-config --cflags ompi-c)
MPI_LIBS   = $(shell pkg-config --libs ompi-c)
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -I. $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

# Libraries in dependency order (a part may use those after it).
# hwagent is archived too so its unit test can link the boards-file parser
# and the journal; its main.o is never pulled from the archive (a test
# defines its own main).
LIBPARTS := hwagent store trials proto grid kernels common
LIBPARTS := $(foreach p,$(LIBPARTS),$(if $(wildcard $(p)/*.c),$(p)))
LIBS     := $(foreach p,$(LIBPARTS),$(BUILD)/libeg_$(p).a)
LINK_LIBS = -Wl,--start-group $(LIBS) -Wl,--end-group $(PKG_LIBS) -lm -lpthread

PROGRAMS := $(if $(wildcard cli/*.c),$(BIN)/expgrid) \
            $(if $(wildcard coordinator/*.c),$(BIN)/expgrid-coordinator) \
            $(if $(wildcard worker/*.c),$(BIN)/expgrid-worker) \
            $(if $(wildcard hwagent/*.c),$(BIN)/expgrid-hwagent)

UNIT_TESTS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(wildcard tests/integration/itest_*.c))
TESTS       := $(UNIT_TESTS) $(INTEG_TESTS)
BENCHES     := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

# Debian packages: to build and test, and the extras `make bench` compares with.
DEB_PKGS   := build-essential pkg-config libuv1-dev libopenmpi-dev openmpi-bin \
              libopenblas-dev libfftw3-dev libmsgpack-dev libpq-dev libyaml-dev \
              zlib1g-dev libsodium-dev libjansson-dev postgresql dataset-fashion-mnist \
              python3 procps
BENCH_PKGS := python3-torch parallel

.PHONY: all deps bench-deps check tests bench demo fuzz clean
all: $(LIBS) $(PROGRAMS)

deps:
	@sh .ci/deps.sh $(DEB_PKGS)

bench-deps:
	@sh .ci/deps.sh $(DEB_PKGS) $(BENCH_PKGS)

tests: all $(TESTS) $(BUILD)/tests/runner

# Unit tests first, then integration tests, in one runner so one summary line.
check: deps
	@$(MAKE) --no-print-directory tests
	@$(BUILD)/tests/runner -j 2 -t 120 $(UNIT_TESTS) $(INTEG_TESTS)

bench: bench-deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@sh bench/run.sh $(BUILD)

# The local stack (embedded PostgreSQL, coordinator, mpirun'd workers and a
# hardware agent with two simulated boards) runs grids/demo.yaml, then the
# board-farm slice grids/demo_boards.yaml (a grid has one target, so the
# fpga:sim16 trials are a grid of their own); the stack stays up afterwards
# for querying.
# The demo: the stack with two simulated boards, demo.yaml (one slice of every
# family) on the MPI workers, demo_boards.yaml on the board farm, the tables,
# an HTML report; the stack stays up for psql and `expgrid query`.
DEMO_COLUMNS := idx,kind,model.arch,model.activation,init.scale,train.algo,model.circulant_block,prune.reset,train_acc,test_acc,remaining,compression,wall_s
demo: deps
	@$(MAKE) --no-print-directory all
	@$(BIN)/expgrid up --boards 2
	@rc=0; \
	for g in demo demo_boards; do \
		{ $(BIN)/expgrid submit --wait grids/$$g.yaml || echo "failed" ; } | \
		    tee $(BUILD)/$$g.out; \
		grep -qx failed $(BUILD)/$$g.out && rc=1; \
	done; \
	id=$$(head -1 $(BUILD)/demo.out); hw=$$(head -1 $(BUILD)/demo_boards.out); \
	case "$$id$$hw" in ''|*[!0-9]*) exit 1;; esac; \
	echo; echo "== grid $$id: trials (expgrid query trials $$id)"; \
	$(BIN)/expgrid query trials $$id --columns $(DEMO_COLUMNS); \
	echo; echo "== grid $$hw: software / design / hardware per layer"; \
	$(BIN)/expgrid query paradigms $$hw; \
	mkdir -p var && $(BIN)/expgrid report $$id -o var/demo-report.html && \
	    echo && echo "HTML report: var/demo-report.html"; \
	echo; \
	echo "The stack is still up. Query it with: psql \"\$$($(BIN)/expgrid db url)\"" \
	     "or $(BIN)/expgrid query trials|best|paradigms GRID; stop it with: $(BIN)/expgrid down"; \
	exit $$rc

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, built with clang under ASan and
# UBSan from the sources of the libraries they exercise (proto and common
# for now: add a part's sources here when a target needs it), each run for
# FUZZ_SECONDS with a corpus kept in $(BUILD)/fuzz/fuzz_<name>.corpus.
FUZZ_PKGS    := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_SRCS     = $(wildcard proto/*.c common/*.c)
FUZZ_CFLAGS   = -std=gnu11 -D_GNU_SOURCE -I. -g -O1 $(WARN) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                $(shell pkg-config --cflags msgpack libsodium)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz:
	@sh .ci/deps.sh $(FUZZ_PKGS)
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS)
	@for f in $(FUZZ_TARGETS); do \
		mkdir -p $$f.corpus && \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		    -artifact_prefix=$$f. \
		    -print_final_stats=1 $$f.corpus || exit 1; \
	done

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(shell pkg-config --libs msgpack libsodium) -lm

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/worker/%.o: worker/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c -o $@ $<

define part_rules
$(BUILD)/libeg_$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach p,$(LIBPARTS),$(eval $(call part_rules,$(p))))

$(BIN)/expgrid: $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c)) $(LIBS)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LINK_LIBS)

$(BIN)/expgrid-coordinator: $(patsubst %.c,$(BUILD)/%.o,$(wildcard coordinator/*.c)) $(LIBS)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LINK_LIBS)

$(BIN)/expgrid-hwagent: $(patsubst %.c,$(BUILD)/%.o,$(wildcard hwagent/*.c)) $(LIBS)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LINK_LIBS)

$(BIN)/expgrid-worker: $(patsubst %.c,$(BUILD)/%.o,$(wildcard worker/*.c)) $(LIBS)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LINK_LIBS) $(MPI_LIBS)

$(BUILD)/tests/runner: tests/runner.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/tests/harness.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/tests/harness.o $(LINK_LIBS)

$(BUILD)/tests/%: tests/integration/%.c $(BUILD)/tests/harness.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/tests/harness.o $(LINK_LIBS)

$(BUILD)/bench/%: bench/%.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(LINK_LIBS)

clean:
	rm -rf build build-san $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
