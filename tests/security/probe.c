/* probe: the static helper of the escape tests (tests/security).
 *
 * busybox has no way to make most of the system calls an attacker would
 * (keyctl, ptrace, capset, init_module, open_by_handle_at, setns, ...), so
 * the tests compile this file with `gcc -static` and copy the binary into
 * the container's rootfs.  Each subcommand makes one attempt and prints
 * "<op>: ok" or "<op>: <ERRNO NAME>" on stdout, which the tests compare.
 * Nothing here writes to a host file: the attempts that would change
 * something are either refused or change only the caller's own namespaces.
 * A few subcommands ("host-...", "flip") are run by the test on the host
 * side to set the scene. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case ESRCH: return "ESRCH";
    case EACCES: return "EACCES"; case EROFS: return "EROFS"; case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL"; case ENOKEY: return "ENOKEY"; case ENOEXEC: return "ENOEXEC";
    case EBUSY: return "EBUSY"; case ENOTDIR: return "ENOTDIR"; case EBADF: return "EBADF";
    case ESTALE: return "ESTALE"; case EKEYREVOKED: return "EKEYREVOKED"; case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT"; case EOPNOTSUPP: return "EOPNOTSUPP"; case ENODEV: return "ENODEV";
    default: { static char buf[32]; snprintf(buf, sizeof buf, "errno%d", e); return buf; }
    }
}

static int report(const char *op, long rc) {
    if (rc < 0) printf("%s: %s\n", op, ename(errno));
    else printf("%s: ok\n", op);
    fflush(stdout);
    return rc < 0;
}

static long keyctl(int cmd, unsigned long a, unsigned long b, unsigned long c, unsigned long d) {
    return syscall(SYS_keyctl, cmd, a, b, c, d);
}

static int cmd_keyring(void) {  /* the session keyring: serial and description */
    long serial = keyctl(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_SESSION_KEYRING, 0, 0, 0);
    char desc[256] = "";
    if (serial < 0) return report("keyring", -1);
    long n = keyctl(KEYCTL_DESCRIBE, serial, (unsigned long)desc, sizeof desc - 1, 0);
    if (n < 0) return report("describe", -1);
    printf("keyring: %ld %s\n", serial, desc);
    return 0;
}

static int cmd_keysearch(const char *desc) {  /* a user key in our session keyring */
    long k = keyctl(KEYCTL_SEARCH, (unsigned long)KEY_SPEC_SESSION_KEYRING, (unsigned long)"user",
                    (unsigned long)desc, 0);
    if (k >= 0) { printf("keysearch: found %ld\n", k); return 0; }
    return report("keysearch", -1);
}

static int cmd_keyread(const char *serial) {  /* a key by its (global) serial */
    char buf[256] = "";
    long n = keyctl(KEYCTL_READ, strtoul(serial, NULL, 10), (unsigned long)buf, sizeof buf - 1, 0);
    if (n >= 0) { buf[n < 255 ? n : 255] = 0; printf("keyread: ok %s\n", buf); return 0; }
    return report("keyread", -1);
}

/* host side: a fresh anonymous session keyring holding one user key, then exec CMD */
static int cmd_host_keyring(char **argv) {
    const char *desc = argv[0], *payload = argv[1], *out = argv[2];
    long ring = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0);
    if (ring < 0) { perror("join"); return 1; }
    long key = syscall(SYS_add_key, "user", desc, payload, strlen(payload), KEY_SPEC_SESSION_KEYRING);
    if (key < 0) { perror("add_key"); return 1; }
    FILE *f = fopen(out, "w");
    if (!f) { perror(out); return 1; }
    fprintf(f, "%ld %ld\n", ring, key);
    fclose(f);
    execvp(argv[4], argv + 4);  /* argv[3] is "--" */
    perror("execvp");
    return 127;
}

/* host side, as the uid under test: a user key in that uid's user keyring
 * (which outlives processes), kept until stdin closes, then invalidated */
static int cmd_host_userkey(const char *desc, const char *payload) {
    long key = syscall(SYS_add_key, "user", desc, payload, strlen(payload), KEY_SPEC_USER_KEYRING);
    if (key < 0) return report("add_key", -1);
    printf("key: %ld\n", key);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return report("invalidate", keyctl(KEYCTL_INVALIDATE, key, 0, 0, 0));
}

/* a key found in our uid's user keyring: link it where we possess it, read it */
static int cmd_usersteal(const char *desc) {
    long k = keyctl(KEYCTL_SEARCH, (unsigned long)KEY_SPEC_USER_KEYRING, (unsigned long)"user",
                    (unsigned long)desc, 0);
    if (report("usersearch", k)) return 1;
    /* found through a keyring we possess, it may be linked into our session keyring */
    report("link", keyctl(KEYCTL_SEARCH, (unsigned long)KEY_SPEC_USER_KEYRING, (unsigned long)"user",
                          (unsigned long)desc, (unsigned long)KEY_SPEC_SESSION_KEYRING));
    char buf[256] = "";
    long n = keyctl(KEYCTL_READ, k, (unsigned long)buf, sizeof buf - 1, 0);
    if (n >= 0) { buf[n < 255 ? n : 255] = 0; printf("steal: ok %s\n", buf); return 0; }
    return report("steal", -1);
}

static int cmd_ptrace(const char *pid) {
    /* SEIZE does not stop the tracee; our exit detaches it */
    return report("ptrace", ptrace(PTRACE_SEIZE, atoi(pid), 0, 0));
}

static int cmd_capset(const char *capname) {
    int cap = atoi(capname);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    printf("bounding: %s\n", prctl(PR_CAPBSET_READ, cap) == 1 ? "has" : "lacks");
    if (syscall(SYS_capget, &h, d) < 0) return report("capget", -1);
    d[cap / 32].permitted |= 1u << (cap % 32);
    d[cap / 32].effective |= 1u << (cap % 32);
    d[cap / 32].inheritable |= 1u << (cap % 32);
    report("capset", syscall(SYS_capset, &h, d));
    d[cap / 32].permitted &= ~(1u << (cap % 32));
    d[cap / 32].effective &= ~(1u << (cap % 32));
    report("capset-inheritable", syscall(SYS_capset, &h, d));
    return report("ambient", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));
}

static int cmd_module(void) {
    /* a blob that is not a module: if the call got past the capability
     * check, the ELF checks would refuse it (ENOEXEC), loading nothing */
    static char blob[256] = "\x7f" "ELF-not-a-module";
    report("init_module", syscall(SYS_init_module, blob, sizeof blob, ""));
    int fd = open("/dev/null", O_RDONLY);
    return report("finit_module", syscall(SYS_finit_module, fd, "", 0));
}

static int cmd_mount(char **argv) {  /* TYPE SOURCE TARGET [bind|remount-rw] */
    unsigned long flags = 0;
    const char *type = argv[0];
    if (argv[3] && !strcmp(argv[3], "bind")) flags = MS_BIND | MS_REC, type = NULL;
    if (argv[3] && !strcmp(argv[3], "remount-rw")) flags = MS_REMOUNT | MS_BIND, type = NULL;
    return report("mount", mount(argv[1], argv[2], type, flags, NULL));
}

static int cmd_umount(const char *target) { return report("umount", umount2(target, MNT_DETACH)); }

static int cmd_setns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (report("open", fd)) return 1;
    return report("setns", setns(fd, 0));
}

/* Shocker (2014): open_by_handle_at with a forged handle of inode 2 (the
 * ext4 root) walks to the filesystem's root, past any chroot or pivot */
static int cmd_handle(const char *path) {
    struct { struct file_handle h; unsigned char bytes[128]; } fh;
    int mount_id;
    fh.h.handle_bytes = 128;
    if (report("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, path, &fh.h, &mount_id, 0))) return 1;
    unsigned int forged[2] = {2, 0};  /* FILEID_INO32_GEN: inode 2, generation 0 */
    fh.h.handle_type = 1;
    fh.h.handle_bytes = 8;
    memcpy(fh.h.f_handle, forged, 8);
    int mfd = open(path, O_RDONLY | O_DIRECTORY);
    int fd = syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY | O_DIRECTORY);
    if (report("open_by_handle_at", fd)) return 1;
    struct stat st;
    fstat(fd, &st);
    printf("handle: %lu:%lu\n", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    return 0;
}

/* the classic chroot escape: chroot into a subdirectory, keep the cwd
 * above it, climb, chroot(".") */
static int cmd_chroot_escape(const char *scratch, const char *hostpath) {
    struct stat before, after;
    stat("/", &before);
    mkdir(scratch, 0700);
    if (report("chroot", chroot(scratch))) return 1;
    for (int i = 0; i < 64; i++) chdir("..");
    if (report("chroot-dot", chroot("."))) return 1;
    stat("/", &after);
    printf("root: %s\n", before.st_dev == after.st_dev && before.st_ino == after.st_ino ? "same" : "other");
    printf("hostpath: %s\n", access(hostpath, F_OK) == 0 ? "visible" : "absent");
    return 0;
}

/* Through an unprivileged user namespace (all caps in it): a fresh proc
 * or sysfs would show what the masks hide; removing a mask would too */
static int cmd_userns(void) {
    if (report("unshare", unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET))) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        report("mount-proc", mount("proc", "/mnt", "proc", 0, NULL));
        report("mount-sysfs", mount("sysfs", "/mnt", "sysfs", 0, NULL));
        report("umount-mask", umount2("/proc/keys", MNT_DETACH));
        report("remount-rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return 0;
}

/* host side: swap each pair of paths (a directory and a symlink)
 * atomically, over and over, until killed */
static int cmd_flip(int n, char **paths) {
    printf("flipping\n");
    fflush(stdout);
    for (;;)
        for (int i = 0; i + 1 < n; i += 2)
            if (syscall(SYS_renameat2, AT_FDCWD, paths[i], AT_FDCWD, paths[i + 1], 2 /* RENAME_EXCHANGE */) < 0) {
                perror("renameat2");
                return 1;
            }
}

static int cmd_ids(void) {
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    printf("uid: %u %u %u\n", r, e, s);
    return 0;
}

/* watch every process's /proc/PID/exe for a file with DEV:INO (stat only:
 * never opened for writing) for SECONDS; prints "hit: PID" when seen */
static int cmd_watch(const char *dev, const char *ino, const char *seconds) {
    unsigned long wdev = strtoul(dev, NULL, 10), wino = strtoul(ino, NULL, 10);
    time_t end = time(NULL) + atoi(seconds);
    long hits = 0, seen = 0;
    printf("watching\n");
    fflush(stdout);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            char path[300];
            struct stat st;
            snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
            if (stat(path, &st) < 0) continue;
            seen++;
            if (st.st_dev == wdev && st.st_ino == wino) {
                if (!hits++ || hits % 1000 == 0) printf("hit: %s\n", e->d_name);
                fflush(stdout);
            }
        }
        if (d) closedir(d);
    }
    printf("seen: %ld hits: %ld\n", seen, hits);
    return 0;
}

static int cmd_caps(void) {  /* our own capability sets, as the kernel shows them */
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cap", 3)) fputs(line, stdout);
    return 0;
}

static int cmd_userkeyring(void) {  /* the user keyring of our uid */
    long serial = keyctl(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_USER_KEYRING, 0, 0, 0);
    if (serial < 0) return report("userkeyring", -1);
    printf("userkeyring: %ld\n", serial);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    if (!strcmp(c, "keyring")) return cmd_keyring();
    if (!strcmp(c, "keysearch") && argc > 2) return cmd_keysearch(argv[2]);
    if (!strcmp(c, "keyread") && argc > 2) return cmd_keyread(argv[2]);
    if (!strcmp(c, "host-keyring") && argc > 6) return cmd_host_keyring(argv + 2);
    if (!strcmp(c, "host-userkey") && argc > 3) return cmd_host_userkey(argv[2], argv[3]);
    if (!strcmp(c, "usersteal") && argc > 2) return cmd_usersteal(argv[2]);
    if (!strcmp(c, "ptrace") && argc > 2) return cmd_ptrace(argv[2]);
    if (!strcmp(c, "capset") && argc > 2) return cmd_capset(argv[2]);
    if (!strcmp(c, "module")) return cmd_module();
    if (!strcmp(c, "mount") && argc > 4) return cmd_mount(argv + 2);
    if (!strcmp(c, "umount") && argc > 2) return cmd_umount(argv[2]);
    if (!strcmp(c, "setns") && argc > 2) return cmd_setns(argv[2]);
    if (!strcmp(c, "handle") && argc > 2) return cmd_handle(argv[2]);
    if (!strcmp(c, "chroot-escape") && argc > 3) return cmd_chroot_escape(argv[2], argv[3]);
    if (!strcmp(c, "flip") && argc > 3) return cmd_flip(argc - 2, argv + 2);
    if (!strcmp(c, "userns")) return cmd_userns();
    if (!strcmp(c, "ids")) return cmd_ids();
    if (!strcmp(c, "caps")) return cmd_caps();
    if (!strcmp(c, "userkeyring")) return cmd_userkeyring();
    if (!strcmp(c, "watch") && argc > 4) return cmd_watch(argv[2], argv[3], argv[4]);
    fprintf(stderr, "probe: unknown command %s\n", c);
    return 2;
}
