/* alerts.c - run a command when something happens to the run ([alert]).
 *
 * What this is: the component that runs [alert] command through sh -c
 * with MLTK_EVENT, MLTK_MESSAGE, MLTK_EPOCH, MLTK_STEP, MLTK_RUN_DIR and
 * MLTK_CONFIG in its environment, for the events listed in `on` (nan,
 * early_stop, finished, crashed, spike, checkpoint), which the other
 * components and the loop raise through mltk_alert().  The command is
 * waited for at most 30 seconds, so a hanging one never stalls training
 * for long.  It keeps no state in checkpoints.
 *
 * What this is not: the decision that something happened (the others).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "component.h"
#include "../schema.h"

/* the events of [alert] on; bit i of mask is events[i] */
static const char *const events[] = { "nan", "early_stop", "finished", "crashed", "spike",
                                      "checkpoint" };
#define N_EVENTS (sizeof events / sizeof *events)

typedef struct alerts {
    const char *cmd;     /* borrowed from the config; NULL: no [alert] */
    unsigned    mask;
} alerts;

static int al_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    alerts *a = calloc(1, sizeof(*a));
    if (!a)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = a;
    (void)s;
    if (!sec)
        return MLTK_OK;
    a->cmd = mltk_params_str(p, "command");
    const char *on = mltk_params_str(p, "on");
    for (const char *q = on; *q;) {
        size_t n = strcspn(q, ", ");
        int known = 0;
        for (unsigned i = 0; i < N_EVENTS && n; i++)
            if (strlen(events[i]) == n && strncmp(q, events[i], n) == 0) {
                a->mask |= 1u << i;
                known = 1;
            }
        if (n && !known)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: [alert] on: unknown event "
                             "'%.*s' (events: nan, early_stop, finished, crashed, spike, "
                             "checkpoint)", mltk_params_where(p), (int)n, q);
        q += n;
        q += strspn(q, ", ");
    }
    return MLTK_OK;
}

static void al_close(void *self)
{
    free(self);
}

void mltk_alert(mltk_session_t *s, const char *event, const char *message)
{
    alerts *a = mltk_component_self(s, &mltk_component_alerts);
    unsigned bit = 0;
    for (unsigned i = 0; i < N_EVENTS; i++)
        if (strcmp(event, events[i]) == 0)
            bit = 1u << i;
    if (!a || !a->cmd || !(a->mask & bit))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        mltk_log(MLTK_LOG_WARN, "alert: cannot start '%s': %s", a->cmd, strerror(errno));
        return;
    }
    if (pid == 0) {
        char num[32];
        setenv("MLTK_EVENT", event, 1);
        setenv("MLTK_MESSAGE", message ? message : "", 1);
        /* the epoch the event belongs to, counted from 1 as the epoch lines
         * count; 0 before the first */
        snprintf(num, sizeof num, "%" PRId64,
                 s->epoch_now > s->epoch_done ? s->epoch_now : s->epoch_done);
        setenv("MLTK_EPOCH", num, 1);
        snprintf(num, sizeof num, "%" PRIu64, s->step);
        setenv("MLTK_STEP", num, 1);
        setenv("MLTK_RUN_DIR", s->run_dir ? s->run_dir : "", 1);
        setenv("MLTK_CONFIG", s->cfg->path, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execl("/bin/sh", "sh", "-c", a->cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    double t0 = mltk_now();
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            status = 0;
            break;
        }
        if (mltk_now() - t0 > 30.0) {
            mltk_log(MLTK_LOG_WARN, "alert: '%s' still runs after 30 s; not waiting for it",
                     a->cmd);
            return;
        }
        usleep(10000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        mltk_log(MLTK_LOG_WARN, "alert: '%s' exited with status %d", a->cmd,
                 WEXITSTATUS(status));
}

const mltk_component_i mltk_component_alerts = {
    .name = "alert",
    .section = "alert",
    .schema = NULL,   /* [alert] has a required key: no defaults without it */
    .open = al_open,
    .close = al_close,
};
