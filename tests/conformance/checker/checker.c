/*
 * checker: runs inside a container under test and reports what it sees as JSON on stdout.
 *
 *   checker report [-s PATH]... [-r PATH]... [-k SYSCTL]...   one JSON object describing the process
 *   checker try ACT [ARG...]                                    {"act", "ok", "errno", ...} for one act
 *   checker sleep SECONDS | exit N | write-file PATH TEXT | print TEXT
 *
 * Built statically (gcc -static -O2) so it needs nothing from the container's root filesystem.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- JSON output ---- */

static int need_comma;

static void jstr(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void sep(void)
{
    if (need_comma)
        putchar(',');
    need_comma = 1;
}

static void key(const char *k)
{
    sep();
    jstr(k);
    putchar(':');
    need_comma = 0;
}

static void open_obj(const char *k) { if (k) key(k); else sep(); putchar('{'); need_comma = 0; }
static void close_obj(void) { putchar('}'); need_comma = 1; }
static void open_arr(const char *k) { if (k) key(k); else sep(); putchar('['); need_comma = 0; }
static void close_arr(void) { putchar(']'); need_comma = 1; }
static void kstr(const char *k, const char *v) { key(k); if (v) jstr(v); else fputs("null", stdout); need_comma = 1; }
static void kint(const char *k, long long v) { key(k); printf("%lld", v); need_comma = 1; }
static void kbool(const char *k, int v) { key(k); fputs(v ? "true" : "false", stdout); need_comma = 1; }
static void astr(const char *v) { sep(); jstr(v); }
static void aint(long long v) { sep(); printf("%lld", v); }

/* ---- small helpers ---- */

static char *read_file(const char *path, ssize_t *len_out)
{
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *len_out = -errno;
        return NULL;
    }
    ssize_t total = 0, n;
    while (total < (ssize_t)sizeof(buf) - 1 && (n = read(fd, buf + total, sizeof(buf) - 1 - total)) > 0)
        total += n;
    int err = errno;
    close(fd);
    if (n < 0 && total == 0) {
        *len_out = -err;
        return NULL;
    }
    buf[total] = 0;
    *len_out = total;
    return buf;
}

static void lines_array(const char *k, const char *path)
{
    ssize_t len;
    char *text = read_file(path, &len);
    open_arr(k);
    if (text) {
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            astr(line);
    }
    close_arr();
}

static const char *status_field(const char *name)
{
    static char value[256];
    ssize_t len;
    char *text = read_file("/proc/self/status", &len);
    size_t nl = strlen(name);
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(value, sizeof(value), "%s", v);
            return value;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static const char *link_of(const char *path)
{
    static char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return NULL;
    target[n] = 0;
    return target;
}

/* ---- report ---- */

static const struct { const char *name; int res; } RLIMITS[] = {
    {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME}, {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static const char *NAMESPACES[] = {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
                                   "time", "time_for_children", "user", "uts"};

static void report_stat(const char *path)
{
    struct stat st;
    open_obj(path);
    if (lstat(path, &st) < 0) {
        kint("errno", errno);
        close_obj();
        return;
    }
    const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink"
                     : S_ISCHR(st.st_mode) ? "char" : S_ISBLK(st.st_mode) ? "block" : S_ISFIFO(st.st_mode) ? "fifo"
                     : "other";
    kstr("type", type);
    kint("mode", st.st_mode & 07777);
    kint("uid", st.st_uid);
    kint("gid", st.st_gid);
    kint("major", major(st.st_rdev));
    kint("minor", minor(st.st_rdev));
    kint("size", st.st_size);
    if (S_ISLNK(st.st_mode))
        kstr("target", link_of(path));
    close_obj();
}

static void report_read(const char *path)
{
    ssize_t len;
    char *text = read_file(path, &len);
    open_obj(path);
    if (text)
        kstr("text", text);
    else
        kint("errno", -len);
    close_obj();
}

static int report(int argc, char **argv)
{
    char buf[PATH_MAX];
    struct utsname uts;

    open_obj(NULL);
    kint("pid", getpid());
    kint("ppid", getppid());
    kint("uid", getuid());
    kint("gid", getgid());
    kint("euid", geteuid());
    kint("egid", getegid());
    gid_t groups[256];
    int ng = getgroups(256, groups);
    open_arr("groups");
    for (int i = 0; i < ng; i++)
        aint(groups[i]);
    close_arr();
    mode_t mask = umask(0);
    umask(mask);
    kint("umask", mask);
    kstr("cwd", getcwd(buf, sizeof(buf)) ? buf : NULL);
    uname(&uts);
    kstr("hostname", uts.nodename);
    kstr("domainname", uts.domainname);

    open_obj("namespaces");
    for (size_t i = 0; i < sizeof(NAMESPACES) / sizeof(*NAMESPACES); i++) {
        snprintf(buf, sizeof(buf), "/proc/self/ns/%s", NAMESPACES[i]);
        kstr(NAMESPACES[i], link_of(buf));
    }
    close_obj();

    open_obj("capabilities");
    const char *capkeys[][2] = {{"inheritable", "CapInh"}, {"permitted", "CapPrm"}, {"effective", "CapEff"},
                                {"bounding", "CapBnd"}, {"ambient", "CapAmb"}};
    for (int i = 0; i < 5; i++)
        kstr(capkeys[i][0], status_field(capkeys[i][1]));
    close_obj();
    const char *nnp = status_field("NoNewPrivs");
    kint("no_new_privs", nnp ? atoi(nnp) : -1);
    const char *sec = status_field("Seccomp");
    kint("seccomp", sec ? atoi(sec) : -1);

    open_obj("rlimits");
    for (size_t i = 0; i < sizeof(RLIMITS) / sizeof(*RLIMITS); i++) {
        struct rlimit rl;
        getrlimit(RLIMITS[i].res, &rl);
        open_arr(RLIMITS[i].name);
        sep();
        printf("%llu", (unsigned long long)rl.rlim_cur);
        sep();
        printf("%llu", (unsigned long long)rl.rlim_max);
        close_arr();
    }
    close_obj();

    lines_array("mountinfo", "/proc/self/mountinfo");
    lines_array("cgroup", "/proc/self/cgroup");
    lines_array("uid_map", "/proc/self/uid_map");
    lines_array("gid_map", "/proc/self/gid_map");

    extern char **environ;
    open_arr("env");
    for (char **e = environ; *e; e++)
        astr(*e);
    close_arr();

    open_obj("fds");
    DIR *d = opendir("/proc/self/fd");
    int dfd = d ? dirfd(d) : -1;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || atoi(de->d_name) == dfd)
            continue;
        snprintf(buf, sizeof(buf), "/proc/self/fd/%s", de->d_name);
        kstr(de->d_name, link_of(buf));
    }
    if (d)
        closedir(d);
    close_obj();
    open_arr("isatty");
    for (int fd = 0; fd < 3; fd++) {
        sep();
        fputs(isatty(fd) ? "true" : "false", stdout);
    }
    close_arr();

    struct winsize ws;
    open_arr("winsize");
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) {
        aint(ws.ws_row);
        aint(ws.ws_col);
    }
    close_arr();

    ssize_t len;
    char *oom = read_file("/proc/self/oom_score_adj", &len);
    kint("oom_score_adj", oom ? atoi(oom) : -1000000);
    kint("personality", personality(0xffffffff));
    kint("ioprio", syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0));
    kstr("exe", link_of("/proc/self/exe"));

    open_obj("sysctls");
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-k") != 0)
            continue;
        char path[PATH_MAX] = "/proc/sys/";
        size_t off = strlen(path);
        for (const char *p = argv[i + 1]; *p && off < sizeof(path) - 1; p++)
            path[off++] = *p == '.' ? '/' : *p;
        path[off] = 0;
        char *text = read_file(path, &len);
        if (text && len > 0 && text[len - 1] == '\n')
            text[len - 1] = 0;
        kstr(argv[i + 1], text);
    }
    close_obj();
    open_obj("stat");
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "-s") == 0)
            report_stat(argv[i + 1]);
    close_obj();
    open_obj("read");
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "-r") == 0)
            report_read(argv[i + 1]);
    close_obj();
    close_obj();
    putchar('\n');
    return 0;
}

/* ---- try: hostile and probing acts ---- */

static int result(const char *act, int ok, int err)
{
    kbool("ok", ok);
    kint("errno", ok ? 0 : err);
    close_obj();
    putchar('\n');
    (void)act;
    return 0;
}

static long syscall_number(const char *name)
{
    static const struct { const char *name; long nr; } TABLE[] = {
        {"getpid", SYS_getpid}, {"getppid", SYS_getppid}, {"getuid", SYS_getuid}, {"getgid", SYS_getgid},
        {"personality", SYS_personality}, {"umask", SYS_umask}, {"getpriority", SYS_getpriority},
        {"setpriority", SYS_setpriority}, {"sethostname", SYS_sethostname}, {"unshare", SYS_unshare},
        {"sync", SYS_sync}, {"getpgid", SYS_getpgid}, {"sched_yield", SYS_sched_yield},
    };
    for (size_t i = 0; i < sizeof(TABLE) / sizeof(*TABLE); i++)
        if (strcmp(TABLE[i].name, name) == 0)
            return TABLE[i].nr;
    return atol(name);
}

static int try_leaked_fds(void)
{
    /* Every descriptor above stderr is a way out if it names something outside the root. */
    char path[64];
    int escaped = 0;
    open_arr("fds");
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        open_obj(NULL);
        kint("fd", fd);
        kstr("target", link_of(path));
        int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up >= 0) {
            snprintf(path, sizeof(path), "/proc/self/fd/%d", up);
            kstr("parent", link_of(path));
            escaped = 1;
            close(up);
        }
        close_obj();
    }
    close_arr();
    return result("leaked-fds", escaped, EBADF);
}

static int try_ptrace(pid_t pid)
{
    if (pid == getpid()) {
        kbool("self", 1);
        return result("ptrace", 0, EPERM);
    }
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0)
        return result("ptrace", 0, errno);
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return result("ptrace", 1, 0);
}

static int try_ptrace_all(void)
{
    /* Attach to every other process this container can see (the runtime must not be among them). */
    DIR *d = opendir("/proc");
    struct dirent *de;
    int any = 0;
    open_arr("attached");
    while (d && (de = readdir(d))) {
        pid_t pid = atoi(de->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
            any = 1;
            aint(pid);
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
    }
    close_arr();
    return result("ptrace-all", any, EPERM);
}

static int try_act(int argc, char **argv)
{
    const char *act = argv[0];
    const char *arg = argc > 1 ? argv[1] : NULL;
    int fd, ok;
    open_obj(NULL);
    kstr("act", act);
    if (arg)
        kstr("arg", arg);

    if (strcmp(act, "mount-tmpfs") == 0) {
        ok = mount("tmpfs", arg ? arg : "/tmp", "tmpfs", 0, "size=1m") == 0;
        return result(act, ok, errno);
    }
    if (strcmp(act, "remount-root") == 0) {
        ok = mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL) == 0;
        return result(act, ok, errno);
    }
    if (strcmp(act, "raw-socket") == 0) {
        fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        return result(act, fd >= 0, errno);
    }
    if (strcmp(act, "mknod") == 0) {
        ok = mknod(arg ? arg : "/tmp/checker-mem", S_IFCHR | 0600, makedev(1, 1)) == 0;
        return result(act, ok, errno);
    }
    if (strcmp(act, "sethostname") == 0) {
        ok = sethostname("escaped", 7) == 0;
        return result(act, ok, errno);
    }
    if (strcmp(act, "write") == 0) {
        /* Open for writing and write one byte (appending, so nothing is destroyed if it works). */
        fd = open(arg, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0)
            return result(act, 0, errno);
        ok = write(fd, "\n", 1) == 1;
        int err = errno;
        close(fd);
        return result(act, ok, err);
    }
    if (strcmp(act, "open-write") == 0) {
        fd = open(arg, O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
            close(fd);
        return result(act, fd >= 0, errno);
    }
    if (strcmp(act, "create") == 0) {
        fd = open(arg, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
        return result(act, fd >= 0, errno);
    }
    if (strcmp(act, "read") == 0) {
        char buf[4096];
        fd = open(arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return result(act, 0, errno);
        ssize_t n = read(fd, buf, sizeof(buf));
        int err = errno;
        close(fd);
        kint("bytes", n);
        return result(act, n > 0, n < 0 ? err : 0);
    }
    if (strcmp(act, "list") == 0) {
        DIR *d = opendir(arg);
        if (!d)
            return result(act, 0, errno);
        int count = 0;
        struct dirent *de;
        while ((de = readdir(d)))
            count += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
        closedir(d);
        kint("entries", count);
        return result(act, count > 0, 0);
    }
    if (strcmp(act, "exec") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            close(1);
            execv(arg, argv + 1);
            _exit(errno == EACCES ? 126 : 127);
        }
        int status;
        waitpid(pid, &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        return result(act, code == 0, code == 126 ? EACCES : code);
    }
    if (strcmp(act, "ptrace") == 0)
        return try_ptrace(arg ? atoi(arg) : 1);
    if (strcmp(act, "ptrace-all") == 0)
        return try_ptrace_all();
    if (strcmp(act, "leaked-fds") == 0)
        return try_leaked_fds();
    if (strcmp(act, "syscall") == 0) {
        long a[4] = {0, 0, 0, 0};
        for (int i = 2; i < argc && i < 6; i++)
            a[i - 2] = strtol(argv[i], NULL, 0);
        fflush(stdout); /* a kill action must not lose what was printed so far */
        errno = 0;
        long ret = syscall(syscall_number(arg), a[0], a[1], a[2], a[3]);
        kint("ret", ret);
        return result(act, ret >= 0, errno);
    }
    kstr("error", "unknown act");
    close_obj();
    putchar('\n');
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: checker report|try|sleep|exit|write-file|print ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "report") == 0)
        return report(argc - 2, argv + 2);
    if (strcmp(cmd, "try") == 0 && argc > 2)
        return try_act(argc - 2, argv + 2);
    if (strcmp(cmd, "sleep") == 0) {
        sleep(argc > 2 ? atoi(argv[2]) : 3600);
        return 0;
    }
    if (strcmp(cmd, "exit") == 0)
        return argc > 2 ? atoi(argv[2]) : 0;
    if (strcmp(cmd, "print") == 0) {
        for (int i = 2; i < argc; i++)
            printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
        return 0;
    }
    if (strcmp(cmd, "write-file") == 0 && argc > 3) {
        FILE *f = fopen(argv[2], "w");
        if (!f || fputs(argv[3], f) < 0 || fclose(f) != 0) {
            perror(argv[2]);
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "checker: unknown command %s\n", cmd);
    return 2;
}
