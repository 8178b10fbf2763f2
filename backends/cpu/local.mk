# The cpu backend: OpenBLAS sgemm plus own threaded kernels.
#
# The kernels rely on loop vectorization, which -O2 (the usual CFLAGS)
# leaves to a "very cheap" cost model that refuses loops needing a scalar
# tail.  Explicit -f options win over whatever -O level CFLAGS carries, so
# they are spelt out here.  No -march: the files with kernels are compiled
# once per instruction set level (CPU_ISA: 0 baseline x86-64, 1 x86-64-v3,
# 2 x86-64-v4; see cpu_internal.h) into three convenience libraries, and
# cpu_plugin.c picks one level per context at run time.
CPU_KERNEL_SOURCES = backends/cpu/cpu.c backends/cpu/cpu_conv.c backends/cpu/cpu_norm.c \
	backends/cpu/cpu_misc.c backends/cpu/cpu_optim.c backends/cpu/cpu_bf16.c
CPU_CPPFLAGS = $(AM_CPPFLAGS) $(OPENBLAS_CFLAGS)
CPU_CFLAGS = $(AM_CFLAGS) -O3 -ftree-loop-vectorize -ftree-slp-vectorize -fno-trapping-math \
	-fvect-cost-model=dynamic -funswitch-loops -fno-math-errno

noinst_LTLIBRARIES += backends/cpu/libcpu_generic.la backends/cpu/libcpu_v3.la \
	backends/cpu/libcpu_v4.la
backends_cpu_libcpu_generic_la_SOURCES = $(CPU_KERNEL_SOURCES)
backends_cpu_libcpu_generic_la_CPPFLAGS = $(CPU_CPPFLAGS) -DCPU_ISA=0
backends_cpu_libcpu_generic_la_CFLAGS = $(CPU_CFLAGS)
backends_cpu_libcpu_v3_la_SOURCES = $(CPU_KERNEL_SOURCES)
backends_cpu_libcpu_v3_la_CPPFLAGS = $(CPU_CPPFLAGS) -DCPU_ISA=1
backends_cpu_libcpu_v3_la_CFLAGS = $(CPU_CFLAGS)
backends_cpu_libcpu_v4_la_SOURCES = $(CPU_KERNEL_SOURCES)
backends_cpu_libcpu_v4_la_CPPFLAGS = $(CPU_CPPFLAGS) -DCPU_ISA=2
backends_cpu_libcpu_v4_la_CFLAGS = $(CPU_CFLAGS)

pkglib_LTLIBRARIES += backends/cpu/cpu.la
backends_cpu_cpu_la_SOURCES = backends/cpu/cpu_plugin.c backends/cpu/pool.c backends/cpu/pool.h \
	backends/cpu/cpu_internal.h backends/cpu/cpu_gemm.c backends/cpu/cpu_gemm.h \
	backends/cpu/cpu_bf16.h
backends_cpu_cpu_la_CPPFLAGS = $(CPU_CPPFLAGS)
backends_cpu_cpu_la_CFLAGS = $(CPU_CFLAGS)
backends_cpu_cpu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
backends_cpu_cpu_la_LIBADD = backends/cpu/libcpu_generic.la backends/cpu/libcpu_v3.la \
	backends/cpu/libcpu_v4.la $(PLUGIN_LIBADD) $(OPENBLAS_LIBS) -lpthread -lm
plugin_DATA += backends/cpu/cpu.ini
EXTRA_DIST += backends/cpu/cpu.ini.in
