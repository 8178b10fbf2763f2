# tests for the cpu backend's bf16 conversions and matrix product
# (tests/check_bf16.c): backends/cpu/cpu_bf16.c and the pool compiled in
# directly.  check_bf16 runs the portable path everywhere and the native
# AVX-512 BF16 path where the machine has it; check_bf16_emul runs the
# native kernels once more on a plain C model of their intrinsics
# (tests/bf16_emul.h), so that they are exercised on any machine.  The
# bf16 ops of the backend (gemm, conv) are tested through the op table in
# tests/check_conformance.c.
if HAVE_CHECK
check_PROGRAMS += tests/check_bf16 tests/check_bf16_emul
TESTS += tests/check_bf16 tests/check_bf16_emul
tests_check_bf16_SOURCES = tests/check_bf16.c backends/cpu/cpu_bf16.c \
	backends/cpu/cpu_bf16.h backends/cpu/pool.c backends/cpu/pool.h
tests_check_bf16_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backends/cpu
tests_check_bf16_CFLAGS = $(TEST_CFLAGS)
tests_check_bf16_LDADD = $(CHECK_LIBS) -lpthread -lm
tests_check_bf16_emul_SOURCES = tests/check_bf16.c backends/cpu/cpu_bf16.c \
	tests/bf16_emul.h backends/cpu/pool.c
tests_check_bf16_emul_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/backends/cpu \
	-I$(top_srcdir)/tests -DCPU_BF16_EMULATE
tests_check_bf16_emul_CFLAGS = $(TEST_CFLAGS)
tests_check_bf16_emul_LDADD = $(CHECK_LIBS) -lpthread -lm
endif
EXTRA_DIST += bench/bf16_gemm.c
