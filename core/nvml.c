/* nvml.c - GPU utilisation, memory and power through NVML, loaded at run
 * time.
 *
 * What this is: the few NVML calls the run's resource log needs, reached
 * with dlopen("libnvidia-ml.so.1") the first time they are asked for, so
 * that mltk neither links nor requires the NVIDIA driver's library: where
 * it is absent, or fails to initialise, the GPU figures are simply not
 * logged (one debug message says why).  The types below mirror the ones
 * of nvml.h that these calls use (opaque device handle, two small structs,
 * int return codes with 0 for success).
 *
 * What this is not: device selection or anything the cuda backend does;
 * only device index `dev` is read, as the backend numbers it.
 */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <stddef.h>

#include "session.h"

typedef struct nvml_device_st *nvml_device;
typedef struct { unsigned int gpu, memory; } nvml_utilization;
typedef struct { unsigned long long total, free, used; } nvml_memory;

static struct {
    int   tried, ok;
    int (*init)(void);
    int (*handle)(unsigned int, nvml_device *);
    int (*util)(nvml_device, nvml_utilization *);
    int (*mem)(nvml_device, nvml_memory *);
    int (*power)(nvml_device, unsigned int *);
} nv;

static int nvml_open(void)
{
    if (nv.tried)
        return nv.ok;
    nv.tried = 1;
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        mltk_log(MLTK_LOG_DEBUG, "no GPU figures in the resource log: %s", dlerror());
        return 0;
    }
    *(void **)&nv.init = dlsym(h, "nvmlInit_v2");
    *(void **)&nv.handle = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&nv.util = dlsym(h, "nvmlDeviceGetUtilizationRates");
    *(void **)&nv.mem = dlsym(h, "nvmlDeviceGetMemoryInfo");
    *(void **)&nv.power = dlsym(h, "nvmlDeviceGetPowerUsage");
    if (!nv.init || !nv.handle || !nv.util || !nv.mem || !nv.power || nv.init() != 0) {
        mltk_log(MLTK_LOG_DEBUG, "no GPU figures in the resource log: NVML did not start");
        return 0;
    }
    nv.ok = 1;
    return 1;
}

int mltk_nvml_read(int dev, mltk_gpu_figures *g)
{
    nvml_device d;
    nvml_utilization u;
    nvml_memory m;
    unsigned int mw;
    g->util_percent = g->mem_used_mb = g->power_w = NAN;
    if (!nvml_open() || nv.handle((unsigned int)dev, &d) != 0)
        return -1;
    if (nv.util(d, &u) == 0)
        g->util_percent = u.gpu;
    if (nv.mem(d, &m) == 0)
        g->mem_used_mb = (double)m.used / (1024.0 * 1024.0);
    if (nv.power(d, &mw) == 0)
        g->power_w = mw / 1000.0;
    return 0;
}
