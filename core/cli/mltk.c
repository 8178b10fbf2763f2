/* mltk.c - the `mltk` command.
 *
 * Parses the command line, builds the plugin registry, and either trains
 * from a config (from the start or resuming a checkpoint), validates it
 * (--dry-run), lists/describes plugins, inspects a checkpoint or plots
 * runs.
 * Every failure is one message on stderr and an exit status from the
 * table in mltk(1); nothing here knows about layers or backends.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mltk/mltk.h>
#include <mltk/plugin.h>

#include "plot.h"

/* ---- exit statuses (documented in mltk.1) ---------------------------------- */

enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1,
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3,
    EXIT_PLUGIN = 4,
    EXIT_DATA = 5
};

static int exit_for(int status)
{
    switch (status) {
    case MLTK_OK:
        return EXIT_OK;
    case MLTK_ERR_CONFIG:
    case MLTK_ERR_SHAPE:
    case MLTK_ERR_UNSUPPORTED:  /* an op, dtype or precision the backend lacks,
                                 * refused when the session is built */
        return EXIT_CONFIG;
    case MLTK_ERR_PLUGIN:
    case MLTK_ERR_ABI:
        return EXIT_PLUGIN;
    case MLTK_ERR_DATA:
        return EXIT_DATA;
    default:
        return EXIT_RUNTIME;
    }
}

static void usage(FILE *f)
{
    fputs("usage: mltk --config FILE [--epochs N] [--resume PATH|auto] [--max-steps N]\n"
          "            [--dry-run] [--quiet] [--verbose] [--plugin-dir DIR]...\n"
          "            [--allow-insecure-plugin-dir]\n"
          "       mltk databench --config FILE [--epochs N]\n"
          "       mltk plugins [--plugin-dir DIR]... [--allow-insecure-plugin-dir]\n"
          "       mltk plugins show NAME\n"
          "       mltk inspect FILE.safetensors\n"
          "       mltk plot RUNDIR... -o FILE.png\n"
          "       mltk plot --confusion RUNDIR|FILE.csv -o FILE.png\n"
          "       mltk --help | --version\n"
          "\n"
          "Train a neural network described by an INI file (see mltk.ini(5)).\n"
          "\n"
          "  -c, --config FILE      training configuration\n"
          "  -e, --epochs N         override [train] epochs\n"
          "  -r, --resume PATH|auto continue exactly from a checkpoint; auto takes the\n"
          "                         newest in the [checkpoint] directory\n"
          "  -s, --max-steps N      stop after N optimizer steps in all, writing a\n"
          "                         checkpoint when [checkpoint] is set\n"
          "  -n, --dry-run          validate the config, build the model, print a\n"
          "                         summary, and exit without training\n"
          "  -q, --quiet            no per-epoch lines, only errors\n"
          "  -v, --verbose          debug messages on stderr\n"
          "  -P, --plugin-dir DIR   search DIR for plugins first (repeatable)\n"
          "      --allow-insecure-plugin-dir\n"
          "                         load plugins from directories and files that others\n"
          "                         may write to (refused by default)\n"
          "  -h, --help             this help\n"
          "  -V, --version          print the version\n"
          "\n"
          "commands:\n"
          "  plugins                list every plugin found (name, kind, summary, path)\n"
          "  plugins show NAME      describe a plugin's parameters\n"
          "  inspect FILE           tensors, shapes, step, metrics and config of a\n"
          "                         checkpoint or weights file\n"
          "  plot RUNDIR... -o PNG  loss and accuracy curves of runs, overlaid\n"
          "  plot --confusion RUNDIR -o PNG   the run's confusion matrix\n"
          "\n"
          "exit status: 0 ok, 1 runtime failure, 2 usage, 3 invalid configuration,\n"
          "4 plugin problem, 5 data problem, 128+N stopped by signal N (after a\n"
          "checkpoint).\n"
          "environment: MLTK_PLUGIN_PATH, MLTK_ALLOW_INSECURE_PLUGIN_DIR, MLTK_LOG_LEVEL.\n"
          "See mltk(1).\n",
          f);
}

static int fail(int status, char *msg)
{
    fprintf(stderr, "mltk: error: %s\n", msg ? msg : mltk_status_str(status));
    free(msg);
    return exit_for(status);
}

/* ---- commands ------------------------------------------------------------------ */

/* The width `mltk plugins` fits its columns to: $COLUMNS, else the
 * terminal's, else 80. */
static int term_columns(void)
{
    const char *c = getenv("COLUMNS");
    if (c && *c) {
        char *end;
        long v = strtol(c, &end, 10);
        if (!*end && v >= 20 && v <= 10000)
            return (int)v;
    }
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* columns of UTF-8 text, one per character */
static int text_cols(const char *s)
{
    int c = 0;
    for (; *s; s++)
        c += ((unsigned char)*s & 0xc0) != 0x80;
    return c;
}

/* `s` in a cell of `w` columns and two blanks after it, cut with "..."
 * when longer; the `last` cell is neither padded nor cut, and ends the
 * line. */
static void put_cell(const char *s, int w, int last)
{
    int cols = text_cols(s);
    if (last) {
        printf("%s\n", s);
        return;
    }
    if (cols <= w) {
        printf("%s%*s  ", s, w - cols, "");
        return;
    }
    const char *p = s;
    for (int k = 0; *p && k < w - 3; k++)
        for (p++; ((unsigned char)*p & 0xc0) == 0x80; p++)
            ;
    printf("%.*s...  ", (int)(p - s), s);
}

static int cmd_plugins(mltk_registry_t *reg, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "show") == 0) {
        if (argc != 2) {
            fputs("mltk: error: usage: mltk plugins show NAME\n", stderr);
            return EXIT_USAGE;
        }
        char *err = NULL;
        int rc = mltk_registry_describe(reg, argv[1], stdout, &err);
        return rc ? fail(rc, err) : EXIT_OK;
    }
    if (argc > 0) {
        fprintf(stderr, "mltk: error: unknown argument '%s' to 'plugins'\n", argv[0]);
        return EXIT_USAGE;
    }
    /* the summary column takes what the terminal leaves (at least 30
     * columns: a long descriptor path may run past the width), cut with
     * "..."; a broken descriptor (kind 0) is listed as such, with its
     * error */
    int n = mltk_registry_count(reg);
    int w[4] = { 4, 4, 7, 10 };
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            int room = term_columns() - (w[0] + 2 + w[1] + 2 + 2 + w[3]);
            if (w[2] > room)
                w[2] = room > 30 ? room : 30;
            put_cell("NAME", w[0], 0);
            put_cell("KIND", w[1], 0);
            put_cell("SUMMARY", w[2], 0);
            put_cell("DESCRIPTOR", w[3], 1);
        }
        for (int i = 0; i < n; i++) {
            mltk_plugin_info in;
            if (mltk_registry_info(reg, i, &in))
                continue;
            const char *cell[4] = { in.name, in.kind ? mltk_kind_name(in.kind) : "broken",
                                    in.summary ? in.summary : "", in.descriptor };
            char line_err[64 + 1024];
            size_t dl = strlen(in.descriptor);
            int line;
            char tail;
            /* "DESC:12: what" of a broken one: the path is in its own column */
            if (!in.kind && strncmp(cell[2], in.descriptor, dl) == 0
                && sscanf(cell[2] + dl, ":%d%c", &line, &tail) == 2 && tail == ':') {
                snprintf(line_err, sizeof line_err, "line %d:%s", line,
                         strchr(cell[2] + dl + 1, ':') + 1);
                cell[2] = line_err;
            }
            for (int c = 0; c < 4; c++) {
                if (!pass && text_cols(cell[c]) > w[c])
                    w[c] = text_cols(cell[c]);
                else if (pass)
                    put_cell(cell[c], w[c], c == 3);
            }
        }
    }
    return EXIT_OK;
}

static int cmd_inspect(int argc, char **argv)
{
    if (argc != 1) {
        fputs("mltk: error: usage: mltk inspect FILE.safetensors\n", stderr);
        return EXIT_USAGE;
    }
    char *err = NULL;
    int rc = mltk_inspect(argv[0], stdout, &err);
    return rc ? fail(rc, err) : EXIT_OK;
}

static int cmd_plot(int argc, char **argv)
{
    const char *out = NULL;
    int confusion = 0, n = 0;
    const char **dirs = calloc((size_t)argc + 1, sizeof(char *));
    if (!dirs)
        return EXIT_RUNTIME;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            if (++i == argc) {
                free(dirs);
                fputs("mltk: error: plot: -o needs a file name\n", stderr);
                return EXIT_USAGE;
            }
            out = argv[i];
        } else if (strcmp(argv[i], "--confusion") == 0) {
            confusion = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            free(dirs);
            fprintf(stderr, "mltk: error: plot: unknown option '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            dirs[n++] = argv[i];
        }
    }
    if (!out || n == 0 || (confusion && n != 1)) {
        free(dirs);
        fputs("mltk: error: usage: mltk plot RUNDIR... -o FILE.png | mltk plot --confusion "
              "RUNDIR -o FILE.png\n", stderr);
        return EXIT_USAGE;
    }
    char *err = NULL, *csv = NULL;
    struct stat st;
    if (confusion && stat(dirs[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t len = strlen(dirs[0]) + sizeof "/confusion.csv";
        if ((csv = malloc(len)))
            snprintf(csv, len, "%s/confusion.csv", dirs[0]);
    }
    int rc = confusion ? mltk_plot_confusion(out, csv ? csv : dirs[0], &err)
                       : mltk_plot_curves(out, dirs, n, &err);
    free(csv);
    free(dirs);
    return rc ? fail(rc, err) : EXIT_OK;
}

static int cmd_train(mltk_registry_t *reg, const char *path, int epochs, int dry_run, int quiet,
                     int log_level, const char *resume, int64_t max_steps, int databench)
{
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    char *err = NULL;
    int rc = mltk_config_load(&cfg, reg, path, &err);
    if (rc)
        return fail(rc == MLTK_ERR_IO ? MLTK_ERR_CONFIG : rc, err);
    mltk_session_opts o = { .quiet = quiet, .epochs = epochs, .log_level = log_level,
                            .resume = resume, .max_steps = max_steps };
    rc = mltk_session_create(&s, cfg, reg, &o, &err);
    if (rc == MLTK_OK) {
        if (dry_run)
            rc = mltk_session_print_summary(s, stdout);
        else if (databench)
            rc = mltk_session_databench(s, epochs > 0 ? epochs : 1, stdout, &err);
        else
            rc = mltk_session_train(s, NULL, &err);
    }
    int code;
    if (rc == MLTK_ERR_INTERRUPTED) {
        /* --max-steps is a requested end; a signal exits as shells expect */
        int sig = mltk_session_signal(s);
        free(err);
        code = sig ? 128 + sig : EXIT_OK;
    } else {
        code = rc ? fail(rc, err) : EXIT_OK;
    }
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    return code;
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "epochs", required_argument, NULL, 'e' },
        { "resume", required_argument, NULL, 'r' },
        { "max-steps", required_argument, NULL, 's' },
        { "dry-run", no_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "plugin-dir", required_argument, NULL, 'P' },
        { "allow-insecure-plugin-dir", no_argument, NULL, 'I' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL;
    const char **dirs = calloc((size_t)argc + 1, sizeof(char *));
    int n_dirs = 0, epochs = 0, dry_run = 0, quiet = 0, log_level = 0, c;
    const char *resume = NULL;
    int64_t max_steps = 0;
    if (!dirs)
        return EXIT_RUNTIME;
    /* inspect and plot take their own arguments (plot has -o) */
    if (argc > 1 && strcmp(argv[1], "inspect") == 0) {
        free(dirs);
        return cmd_inspect(argc - 2, argv + 2);
    }
    if (argc > 1 && strcmp(argv[1], "plot") == 0) {
        free(dirs);
        return cmd_plot(argc - 2, argv + 2);
    }
    while ((c = getopt_long(argc, argv, "c:e:r:s:nqvP:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'e': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1000000) {
                fprintf(stderr, "mltk: error: --epochs takes a whole number >= 1, got '%s'\n", optarg);
                free(dirs);
                return EXIT_USAGE;
            }
            epochs = (int)v;
            break;
        }
        case 'r':
            resume = optarg;
            break;
        case 's': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1) {
                fprintf(stderr, "mltk: error: --max-steps takes a whole number >= 1, got '%s'\n",
                        optarg);
                free(dirs);
                return EXIT_USAGE;
            }
            max_steps = v;
            break;
        }
        case 'n':
            dry_run = 1;
            break;
        case 'q':
            quiet = 1;
            log_level = 1 + MLTK_LOG_ERROR;
            mltk_log_set_level(MLTK_LOG_ERROR);
            break;
        case 'v':
            log_level = 1 + MLTK_LOG_DEBUG;
            mltk_log_set_level(MLTK_LOG_DEBUG);
            break;
        case 'P':
            dirs[n_dirs++] = optarg;
            break;
        case 'I':  /* long option only; the registry reads the variable */
            setenv("MLTK_ALLOW_INSECURE_PLUGIN_DIR", "1", 1);
            break;
        case 'h':
            usage(stdout);
            free(dirs);
            return EXIT_OK;
        case 'V':
            printf("mltk %s (plugin ABI %d.%d)\n", mltk_version(), MLTK_ABI_MAJOR, MLTK_ABI_MINOR);
            free(dirs);
            return EXIT_OK;
        default:
            usage(stderr);
            free(dirs);
            return EXIT_USAGE;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    int databench = cmd && strcmp(cmd, "databench") == 0;
    if (databench && !config) {
        fprintf(stderr, "mltk: error: databench needs --config FILE\n");
        free(dirs);
        return EXIT_USAGE;
    }
    if (databench)
        cmd = NULL;
    if (cmd && strcmp(cmd, "plugins") != 0) {
        fprintf(stderr, "mltk: error: unknown command '%s' (try --help)\n", cmd);
        free(dirs);
        return EXIT_USAGE;
    }
    if (!cmd && !config) {
        usage(stderr);
        free(dirs);
        return EXIT_USAGE;
    }

    mltk_registry_t *reg = NULL;
    char *err = NULL;
    int rc = mltk_registry_create(&reg, dirs, 1, &err);
    free(dirs);
    if (rc)  /* an unreadable --plugin-dir is a command-line mistake */
        return rc == MLTK_ERR_IO ? (fail(rc, err), EXIT_USAGE) : fail(rc, err);
    int code;
    if (cmd) {
        code = cmd_plugins(reg, argc - optind - 1, argv + optind + 1);
    } else {
        code = cmd_train(reg, config, epochs, dry_run, quiet, log_level, resume, max_steps,
                         databench);
    }
    mltk_registry_destroy(reg);
    return code;
}
