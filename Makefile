# bnlab — make · make test · make test-asan · make bench · make bench-quick · make demo · make install · make deps
PREFIX ?= /usr/local
BUILD  ?= build
CC     ?= cc

# The OpenMP build of OpenBLAS (Debian's libopenblas-openmp-dev), found
# through its own pkg-config file: our kernels use OpenMP too, so both share
# one thread pool. The rpath pins it whatever the system-wide alternative is.
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_PC  := PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig pkg-config
PKGS         := lua5.4 libpng zlib freetype2

# Warnings are errors everywhere (CI included). Never -ffast-math: NaN/Inf
# are data in divergence studies.
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Isrc \
           $(shell $(OPENBLAS_PC) --cflags openblas 2>/dev/null) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell $(OPENBLAS_PC) --libs openblas 2>/dev/null) -Wl,-rpath,$(OPENBLAS_DIR) \
           $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lreadline -fopenmp -lm

ifeq ($(SANITIZE),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

CORE_SRC := $(wildcard src/*.c src/ops/*.c src/data/*.c src/render/*.c)
CORE_SRC := $(filter-out src/main.c src/repl.c,$(CORE_SRC))
APP_SRC  := $(wildcard src/main.c src/repl.c src/bindings/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libbnlab.a
# The default build leaves ./bnlab at the top; other build dirs (the
# sanitizer build, helpers' private builds) keep their binary inside.
BIN      := $(if $(APP_SRC),$(if $(filter build,$(BUILD)),bnlab,$(BUILD)/bnlab),)

TEST_SRC := $(wildcard tests/c/test_*.c)
TEST_BIN := $(TEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
TEST_LIB := $(BUILD)/tests/testutil.o
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test test-asan check-c bench bench-quick demo install clean

all: $(LIB) $(BIN)

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c $(wildcard src/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

ifneq ($(BIN),)
$(BIN): $(APP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
endif

$(BUILD)/tests/testutil.o: tests/c/testutil.c tests/c/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/c/%.c $(TEST_LIB) $(LIB) tests/c/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_LIB) $(LIB) $(LDLIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Runs every C test binary (and the Lua tests once the program exists) and
# prints one closing "N passed, N failed" line.
check-c: $(TEST_BIN) $(BIN)
	@tests/run.sh ./$(BIN) $(TEST_BIN)

# Then the file readers' short fuzz run (libFuzzer: clang, libclang-rt-14-dev,
# libomp-dev; ~20 s, plus ~40 s to build the instrumented core the first time).
test: deps
	@scripts/deps.sh clang libclang-rt-14-dev libomp-dev
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-c
	@$(MAKE) --no-print-directory fuzz-files-short

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
	  $(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 check-c

# The core benchmark (sgemm, conv2d), then bnlab against PyTorch on the same
# training and inference steps (bench/compare.lua, docs/performance.md).
# bench-quick: the comparison on ResNet-20 only, with few steps.
bench: deps
	@scripts/deps.sh python3-torch python3-numpy
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(BIN)
	@bench/run.sh $(BUILD)
	@./$(BIN) bench/compare.lua --bnlab ./$(BIN) --core $(BUILD)/bench/core

bench-quick: deps
	@scripts/deps.sh python3-torch python3-numpy
	@$(MAKE) --no-print-directory $(BUILD)/bench/core $(BIN)
	@./$(BIN) bench/compare.lua --quick --bnlab ./$(BIN) --core $(BUILD)/bench/core

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/bnlab \
	           $(DESTDIR)$(PREFIX)/share/bnlab/lua
	$(if $(BIN),install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/)
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 src/*.h $(DESTDIR)$(PREFIX)/include/bnlab/
	cp -r lua/. $(DESTDIR)$(PREFIX)/share/bnlab/lua/

clean:
	rm -rf build build-* bnlab

# Fuzzing targets: fuzz-api, fuzz-files, fuzz-files-short, fuzz-corpus (docs/reliability.md).
include tests/fuzz/Makefile.inc
