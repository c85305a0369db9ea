# Makefile - builds the three binaries, the tests, and runs the private stack.
#
# Honours the user's CC, CFLAGS and LDFLAGS; the project's own flags are
# added on top. BUILD selects the output folder so that the sanitizer build
# (build/asan) lives beside the normal one (build).

CC      ?= cc
CFLAGS  ?= -O2 -g
BUILD   ?= build
SANITIZE ?= 0
ASAN_BUILD ?= build/asan

PKGS         := libpq hiredis libcjson gsl
PKG_CFLAGS   := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -ffp-contract=off: no fused multiply-adds, so the demo data generator gives
# the same bits with every compiler and -march.
ENMS_CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -ffp-contract=off -MMD -MP $(PKG_CFLAGS)
ENMS_LDLIBS  := -lcivetweb -lpthread $(PKG_LIBS) -lm
ifeq ($(SANITIZE),1)
SAN_FLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

COMMON_SRC := $(wildcard common/*.c)
API_SRC    := $(wildcard api/*.c)
WORKER_SRC := $(wildcard worker/*.c worker/models/*.c)
CTL_SRC    := $(wildcard ctl/*.c)
UNIT_SRC   := $(wildcard tests/unit/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
# Everything but a process's main.c can be linked into the unit tests.
LIB_SRC := $(COMMON_SRC) $(filter-out api/main.c,$(API_SRC)) \
           $(filter-out worker/main.c,$(WORKER_SRC)) $(filter-out ctl/main.c,$(CTL_SRC))

BINS := $(BUILD)/bin/enms-api $(BUILD)/bin/enms-worker $(BUILD)/bin/enmsctl

.PHONY: all build unit deps test run up down lint format asan fuzz fuzz-build bench bench-quick bench-scale clean help \
        chaos chaos-short
.DEFAULT_GOAL := build

help:
	@echo "make run    install missing packages, build, start the private stack (Ctrl-C stops it)"
	@echo "make test   build, start throwaway PostgreSQL+Redis, run every test"
	@echo "make build  compile build/bin/{enms-api,enms-worker,enmsctl}"
	@echo "make up / make down   the private stack in the background"
	@echo "make lint   clang-format check and cppcheck;  make format  reformat"
	@echo "make asan   sanitizer build in build/asan;  make deps  install Debian packages"

all build: $(BINS) web-assets

# The dashboard's charting library: Chart.js from Debian's libjs-chart.js, copied
# into the served folder with its version and licence (web/vendor/README.md says
# more; the copies are generated, not committed). No CDN.
CHARTJS_SRC := /usr/share/javascript/chart.js/chart.min.js
.PHONY: web-assets
web-assets:
	@if [ ! -f $(CHARTJS_SRC) ]; then \
		echo "web-assets: $(CHARTJS_SRC) missing (make deps installs libjs-chart.js): the dashboard draws no charts" >&2; \
	elif ! cmp -s $(CHARTJS_SRC) web/vendor/chart.min.js; then \
		cp $(CHARTJS_SRC) web/vendor/chart.min.js.tmp.$$$$ && mv -f web/vendor/chart.min.js.tmp.$$$$ web/vendor/chart.min.js; \
		cp /usr/share/doc/libjs-chart.js/copyright web/vendor/chart.js.LICENSE; \
		dpkg-query -W -f='Chart.js from Debian package libjs-chart.js $${Version} ($(CHARTJS_SRC)), MIT (Expat) licence\n' \
			libjs-chart.js > web/vendor/VERSION; \
	fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ENMS_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -c $< -o $@

# The API links the model code too: drift checks and A/B results score
# stored model versions (worker/models is pure, no Redis or HTTP).
$(BUILD)/bin/enms-api: $(call obj,$(API_SRC) $(COMMON_SRC) $(wildcard worker/models/*.c))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) $^ -o $@ $(ENMS_LDLIBS)

$(BUILD)/bin/enms-worker: $(call obj,$(WORKER_SRC) $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) $^ -o $@ $(ENMS_LDLIBS)

# enmsctl runs one housekeeping pass on demand and fits models outside the
# queue (enmsctl fit): the same code the workers run.
$(BUILD)/bin/enmsctl: $(call obj,$(CTL_SRC) $(COMMON_SRC) worker/housekeeping.c $(wildcard worker/models/*.c))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) $^ -o $@ $(ENMS_LDLIBS)

unit: $(BUILD)/bin/unit-tests
$(BUILD)/bin/unit-tests: $(call obj,$(UNIT_SRC) $(LIB_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) $^ -o $@ $(ENMS_LDLIBS) -lcriterion

asan:
	$(MAKE) BUILD=$(ASAN_BUILD) SANITIZE=1 CFLAGS="-O1 -g" build unit

# libFuzzer targets: fuzz/fuzz_<name>.c, one per parser (fuzz/README.md).
# The project's code is compiled once into build/fuzz/obj with coverage
# instrumentation and ASan/UBSan, archived, and each target links what it
# uses. `make fuzz` runs each target in turn with its committed seeds
# (fuzz/corpus/<name>) for FUZZ_SECONDS, or until FUZZ_RUNS inputs when set
# and that comes first; FUZZ_TARGETS picks some (names without fuzz_);
# FUZZ_NICE="nice -n 19" for long runs on a shared machine. The suite runs a
# short smoke of each (tests/run.sh).
FUZZ_SECONDS ?= 300
FUZZ_RUNS    ?=
FUZZ_NICE    ?=
FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_TARGETS ?= $(patsubst fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(COMMON_SRC) $(filter-out api/main.c,$(API_SRC)) $(wildcard worker/models/*.c) \
                ctl/csv_reading.c ctl/gretl.c
FUZZ_CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -O1 -ffp-contract=off \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -MMD -MP $(PKG_CFLAGS)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libenms-fuzz.a: $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

build/fuzz/%: build/fuzz/obj/fuzz/%.o build/fuzz/libenms-fuzz.a
	clang -fsanitize=fuzzer,address,undefined $^ -o $@ $(ENMS_LDLIBS)

# Kept, so that a second `make fuzz-build` links nothing.
.SECONDARY: $(patsubst fuzz/%.c,build/fuzz/obj/fuzz/%.o,$(FUZZ_SRC))

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: fuzz_$$t for $(if $(FUZZ_RUNS),$(FUZZ_RUNS) inputs or ,)$(FUZZ_SECONDS) s"; \
		$(FUZZ_NICE) bash fuzz/run.sh build/fuzz/fuzz_$$t build/fuzz/corpus-fuzz_$$t \
			$(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 || exit 1; \
	done

# Side-by-side benchmarks of issue 9 (bench/run.sh; docs/performance.md says
# what each measures): a private durable PostgreSQL and Redis, then the figure
# tables of docs/performance.md regenerated. bench-quick is the < 2 min smoke
# variant, bench-scale the long 1,000-machine run. Benchmarks assert nothing.
bench: build
	@bash scripts/deps.sh --bench
	@bash bench/run.sh --bin $(BUILD)/bin
	@BENCH_BIN=$(BUILD)/bin bash bench/seed_import.sh

bench-quick: build
	@bash scripts/deps.sh --bench
	@bash bench/run.sh --quick --bin $(BUILD)/bin

bench-scale: build
	@bash scripts/deps.sh --bench
	@bash bench/scale.sh --bin $(BUILD)/bin

# The chaos run of issue 8 (tests/chaos/chaos.py): jobs, 4 workers and a
# kill -9 every few seconds against a throwaway PostgreSQL and Redis;
# docs/reliability.md has the figures. chaos-short is the variant the suite runs.
CHAOS_REPORT ?= $(BUILD)/chaos-report
chaos: build
	@ENMS_CHAOS_COMMAND="make chaos" bash tests/chaos/run_chaos.sh $(BUILD) --jobs 1000 \
		--kills 50 --kill-interval 2-3 --workers 4 --report $(CHAOS_REPORT).md \
		--report $(CHAOS_REPORT).json

chaos-short: build
	@ENMS_CHAOS_COMMAND="make chaos-short" bash tests/chaos/run_chaos.sh $(BUILD) --jobs 200 \
		--kills 20 --kill-interval 0.8-1.2 --workers 4 --report $(CHAOS_REPORT)-short.md \
		--report $(CHAOS_REPORT)-short.json

# The load test of issue 8 (bench/load_test.sh, bench/load.py): LOAD_SECONDS
# of mixed API traffic from wrk while two workers train the jobs it
# triggers, against a throwaway PostgreSQL and Redis; docs/reliability.md
# (Load) has the figures. The suite runs a short variant (test_load.py).
LOAD_SECONDS ?= 60
.PHONY: load
load: build
	@ENMS_LOAD_COMMAND="make load" bash bench/load_test.sh --bin $(BUILD)/bin \
		--seconds $(LOAD_SECONDS) --report $(BUILD)/load-report

deps:
	@bash scripts/deps.sh

test: deps
	@bash tests/run.sh

run: deps build
	@bash scripts/stack.sh run

up: deps build
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')

lint:
	@clang-format --dry-run --Werror $(C_FILES)
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr --std=c11 -D_DEFAULT_SOURCE $(PKG_CFLAGS) \
		--suppress=missingIncludeSystem common api worker ctl
	@echo "lint: clean"

format:
	clang-format -i $(C_FILES)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find build/fuzz/obj -name '*.d' 2>/dev/null)
