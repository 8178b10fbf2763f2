# The cpu backend: OpenBLAS sgemm plus own threaded kernels.
#
# The kernels rely on loop vectorization, which -O2 (the usual CFLAGS)
# leaves to a "very cheap" cost model that refuses loops needing a scalar
# tail.  Explicit -f options win over whatever -O level CFLAGS carries, so
# they are spelt out here.  No -march: hot kernels are cloned per ISA at
# build time and picked at load time (target_clones in cpu.c).
pkglib_LTLIBRARIES += backends/cpu/cpu.la
backends_cpu_cpu_la_SOURCES = backends/cpu/cpu.c backends/cpu/pool.c backends/cpu/pool.h \
	backends/cpu/cpu_internal.h backends/cpu/cpu_conv.c backends/cpu/cpu_gemm.c \
	backends/cpu/cpu_gemm.h backends/cpu/cpu_norm.c \
	backends/cpu/cpu_misc.c backends/cpu/cpu_optim.c
backends_cpu_cpu_la_SOURCES += backends/cpu/cpu_bf16.c backends/cpu/cpu_bf16.h
backends_cpu_cpu_la_CPPFLAGS = $(AM_CPPFLAGS) $(OPENBLAS_CFLAGS)
backends_cpu_cpu_la_CFLAGS = $(AM_CFLAGS) -O3 -ftree-loop-vectorize -ftree-slp-vectorize -fno-trapping-math \
	-fvect-cost-model=dynamic -funswitch-loops -fno-math-errno
backends_cpu_cpu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
backends_cpu_cpu_la_LIBADD = $(PLUGIN_LIBADD) $(OPENBLAS_LIBS) -lpthread -lm
plugin_DATA += backends/cpu/cpu.ini
EXTRA_DIST += backends/cpu/cpu.ini.in
