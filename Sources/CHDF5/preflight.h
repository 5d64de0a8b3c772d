/* A crash guard for reading untrusted HDF5 files (issue 10: loaders fuzzed).
 *
 * HDF5 1.10 (Debian 12's libhdf5 1.10.8) does not survive corrupt or hostile files: fuzzing
 * Eidetic's readers found, within minutes, segfaults in H5F__accum_read, H5A__close and
 * H5MM_xfree, heap overflows in H5O__msg_iterate_real, overlapping memcpy in H5HG_read and
 * endless loops. Those are library bugs no check in our code can reach before they fire.
 *
 * So `eh5_preflight(path)` first does, in a forked child process, everything Eidetic's
 * readers can do to a file opened read-only — open it, walk every group (by name and by
 * creation order), look up and open every hard link, read every attribute as the readers
 * do, read every dataset (the full read plus each memory type the readers use, and the
 * direct chunk reads of one-row-per-chunk datasets) — and reports whether that child
 * finished, crashed, or hung. Only a file the child survived is opened in-process. The child
 * runs only C (libc and HDF5), never Swift, so forking a multithreaded process is safe; it
 * leaves with _exit, writes nothing, and its stderr goes to /dev/null.
 *
 * The size rule is the one in HDF5File.checkedCount: a read of n elements of e bytes is
 * attempted only when n·e ≤ 1,100 × file size + 16 MiB (readers refuse larger ones). */
#ifndef EIDETIC_HDF5_PREFLIGHT_H
#define EIDETIC_HDF5_PREFLIGHT_H

#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    hsize_t file_bytes;   /* size on disk */
    long visited;         /* objects visited (bounded: hard links can form cycles) */
    int depth;
} eh5_walk_state;

static inline int eh5__fits(const eh5_walk_state *w, hsize_t n, size_t element) {
    hsize_t limit = 1100 * (w->file_bytes < ((hsize_t)1 << 40) ? w->file_bytes : ((hsize_t)1 << 40)) + ((hsize_t)16 << 20);
    return n <= limit / (element ? element : 1);
}

static inline hid_t eh5__vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* HDF5File.attributes(of:) */
static inline void eh5__attributes(eh5_walk_state *w, hid_t obj) {
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return;
    for (hsize_t i = 0; i < info.num_attrs; i++) {
        hid_t a = H5Aopen_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0) break;
        ssize_t len = H5Aget_name(a, 0, NULL);
        if (len >= 0) {
            char *name = (char *)malloc((size_t)len + 1);
            if (name) { H5Aget_name(a, (size_t)len + 1, name); free(name); }
        }
        hid_t t = H5Aget_type(a);
        hid_t s = H5Aget_space(a);
        if (t >= 0 && s >= 0 && H5Sget_simple_extent_npoints(s) == 1) {
            switch (H5Tget_class(t)) {
            case H5T_INTEGER: { int64_t v = 0; H5Aread(a, H5T_NATIVE_INT64, &v); break; }
            case H5T_FLOAT: { double v = 0; H5Aread(a, H5T_NATIVE_DOUBLE, &v); break; }
            case H5T_STRING:
                if (H5Tis_variable_str(t) > 0) {
                    char *p = NULL;
                    hid_t mt = eh5__vlen_utf8();
                    if (H5Aread(a, mt, &p) >= 0 && p) free(p);
                    H5Tclose(mt);
                } else {
                    size_t n = H5Tget_size(t);
                    if (n > 0 && n <= w->file_bytes) {
                        char *b = (char *)calloc(n + 1, 1);
                        if (b) { H5Aread(a, t, b); free(b); }
                    }
                }
                break;
            default: break;
            }
        }
        if (s >= 0) H5Sclose(s);
        if (t >= 0) H5Tclose(t);
        H5Aclose(a);
    }
}

static inline void eh5__read_all(eh5_walk_state *w, hid_t ds, hid_t memtype, hsize_t n, size_t element) {
    if (n == 0 || !eh5__fits(w, n, element)) return;
    void *buf = malloc((size_t)(n * element));
    if (!buf) return;
    H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    free(buf);
}

/* HDF5File.info, readUInt8 / readInt64 / readTensor / readStrings, readUInt8Rows' direct
   chunk reads. */
static inline void eh5__dataset(eh5_walk_state *w, hid_t ds) {
    hid_t space = H5Dget_space(ds), type = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t dims[H5S_MAX_RANK + 1], chunk[H5S_MAX_RANK + 1], offset[H5S_MAX_RANK + 1];
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (type < 0 || rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, dims, NULL) < 0) goto done;
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] != 0 && n > (hsize_t)-1 / dims[i]) goto done;   /* overflows: readers refuse it */
        n *= dims[i];
    }
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    H5Tget_sign(type);
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && rank >= 1 && H5Pget_chunk(dcpl, rank, chunk) == rank) {
        int nf = H5Pget_nfilters(dcpl);
        for (int f = 0; f < nf && f < 32; f++) {
            unsigned flags = 0, cd[8], conf = 0;
            size_t nelem = 8;
            char name[64];
            H5Pget_filter2(dcpl, (unsigned)f, &flags, &nelem, cd, sizeof name, name, &conf);
        }
        if (chunk[0] == 1 && cls == H5T_INTEGER && size == 1 && n > 0 && eh5__fits(w, n, 1)) {
            for (int i = 0; i < rank; i++) offset[i] = 0;
            for (hsize_t r = 0; r < dims[0]; r++) {
                hsize_t stored = 0;
                offset[0] = r;
                if (H5Dget_chunk_storage_size(ds, offset, &stored) < 0 || stored == 0 || stored > w->file_bytes) continue;
                void *buf = malloc((size_t)stored);
                uint32_t mask = 0;
                if (buf) { H5Dread_chunk(ds, H5P_DEFAULT, offset, &mask, buf); free(buf); }
            }
        }
    }
    if (cls == H5T_INTEGER && rank >= 1 && n > 0 && eh5__fits(w, n, 1)) {
        /* readUInt8Rows without one-row chunks: a hyperslab union of rows, read as uint8 */
        hsize_t start[H5S_MAX_RANK + 1], count[H5S_MAX_RANK + 1], row = n / dims[0];
        hid_t fspace = H5Scopy(space);
        if (fspace >= 0 && row <= ((hsize_t)64 << 20)) {
            H5Sselect_none(fspace);
            for (int i = 0; i < rank; i++) { start[i] = 0; count[i] = dims[i]; }
            count[0] = 1;
            H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, NULL, count, NULL);
            start[0] = dims[0] - 1;
            H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, NULL, count, NULL);
            hsize_t m = (dims[0] > 1 ? 2 : 1) * row;
            hid_t mspace = H5Screate_simple(1, &m, NULL);
            void *buf = malloc((size_t)m);
            if (buf && mspace >= 0) H5Dread(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, buf);
            free(buf);
            if (mspace >= 0) H5Sclose(mspace);
        }
        if (fspace >= 0) H5Sclose(fspace);
    }
    if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        /* the read a reader most likely does in full, then every memory type while small */
        hid_t full = cls == H5T_FLOAT ? (size == 8 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT) : (size == 1 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT64);
        eh5__read_all(w, ds, full, n, H5Tget_size(full));
        hid_t types[4] = { H5T_NATIVE_UINT8, H5T_NATIVE_INT64, H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE };
        for (int k = 0; k < 4; k++) {
            size_t e = H5Tget_size(types[k]);
            if (types[k] != full && n <= ((hsize_t)64 << 20) / e) eh5__read_all(w, ds, types[k], n, e);
        }
    } else if (cls == H5T_STRING && H5Tis_variable_str(type) > 0 && n > 0 && eh5__fits(w, n, sizeof(char *))) {
        char **p = (char **)calloc((size_t)n, sizeof(char *));
        hid_t mt = eh5__vlen_utf8();
        if (p && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) >= 0) {
            for (hsize_t i = 0; i < n; i++) free(p[i]);
        }
        free(p);
        H5Tclose(mt);
    }
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
}

static inline void eh5__object(eh5_walk_state *w, hid_t obj);

static inline herr_t eh5__link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    eh5_walk_state *w = (eh5_walk_state *)data;
    (void)info;
    if (++w->visited > 100000) return 1;
    H5L_info_t link;
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0) return 0;
    if (H5Lget_info(group, name, &link, H5P_DEFAULT) < 0 || link.type != H5L_TYPE_HARD) return 0;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return 0;
    eh5__object(w, obj);
    H5Oclose(obj);
    return 0;
}

static inline void eh5__object(eh5_walk_state *w, hid_t obj) {
    eh5__attributes(w, obj);
    H5I_type_t kind = H5Iget_type(obj);
    if (kind == H5I_DATASET) {
        eh5__dataset(w, obj);
    } else if (kind == H5I_GROUP && w->depth < 8) {
        w->depth++;
        H5G_info_t g;
        if (H5Gget_info(obj, &g) >= 0) {   /* HDF5File.datasetNames: by creation order, else by name */
            H5_index_t orders[2] = { H5_INDEX_CRT_ORDER, H5_INDEX_NAME };
            for (int k = 0; k < 2; k++) {
                for (hsize_t i = 0; i < g.nlinks; i++) {
                    ssize_t len = H5Lget_name_by_idx(obj, ".", orders[k], H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
                    if (len < 0) break;
                    char *name = (char *)malloc((size_t)len + 1);
                    if (name) { H5Lget_name_by_idx(obj, ".", orders[k], H5_ITER_INC, i, name, (size_t)len + 1, H5P_DEFAULT); free(name); }
                }
            }
        }
        hsize_t idx = 0;
        H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, eh5__link, w);
        w->depth--;
    }
}

static inline void eh5__walk(const char *path) {
    struct stat st;
    eh5_walk_state w = { 0, 0, 0 };
    if (stat(path, &st) != 0) return;
    w.file_bytes = (hsize_t)st.st_size;
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid < 0) return;
    hid_t root = H5Oopen(fid, ".", H5P_DEFAULT);
    if (root >= 0) { eh5__object(&w, root); H5Oclose(root); }
    H5Fclose(fid);
}

/* kB of a "Name:   123 kB" line of /proc/self/status (0 when absent). Also behind Swift's
   ProcessMemory (HDF5 module). */
static inline long eh5__status_kb(const char *name) {
    char line[256];
    long kb = 0;
    size_t n = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') { kb = strtol(line + n + 1, NULL, 10); break; }
    }
    fclose(f);
    return kb;
}

/* Set by sanitizer runtimes (ASan, libFuzzer); absent, and so never called, otherwise. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* Walks `path` in a child process. Returns 0 when the child finished (HDF5 errors are fine:
   the reader reports them), a signal number when the child died of it, -1 when it exited
   non-zero (a sanitizer report), -5 when it used more than `timeout_seconds` of CPU time
   (RLIMIT_CPU: a loop in the library), -2 when it ran past `wall_factor` × `timeout_seconds`
   of wall-clock time (killed: a hang that does not use the CPU), -3 when no child could be
   started or waited for (no check was made), -4 when reading made the child's resident
   memory grow by more than 1,100 × the file size + 512 MiB (HDF5 trusting a corrupt size
   field: a 6 kB file can make it touch gigabytes). The limit is CPU time, not wall time, so
   that a sound file is not refused on a machine busy with other work (a `nice`d job, an
   oversubscribed node): there the child may wait minutes for its two seconds of CPU. */
static inline int eh5_preflight(const char *path, double timeout_seconds, double wall_factor) {
    pid_t pid = fork();
    if (pid < 0) return -3;
    if (pid == 0) {
        struct rlimit none = { 0, 0 };
        setrlimit(RLIMIT_CORE, &none);                          /* SIGXCPU must not write a core file */
        rlim_t cpu = (rlim_t)timeout_seconds + 1;               /* whole seconds, rounded up */
        struct rlimit limit = { cpu, cpu + 1 };                 /* SIGXCPU, then SIGKILL a second later */
        setrlimit(RLIMIT_CPU, &limit);
        signal(SIGXCPU, SIG_DFL);
        int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };
        for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
        /* under libFuzzer, a sanitizer report here must not be recorded as the fuzzer's crash */
        if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, 1); dup2(null, 2); }
        int clear = open("/proc/self/clear_refs", O_WRONLY);   /* restart the peak-RSS count */
        if (clear >= 0) { if (write(clear, "5", 1) != 1) {} close(clear); }
        long before = eh5__status_kb("VmRSS");
        struct stat st;
        long budget = (stat(path, &st) == 0 ? (long)(1100 * (double)st.st_size / 1024) : 0) + 512 * 1024;
        eh5__walk(path);
        long peak = eh5__status_kb("VmHWM");
        _exit(before > 0 && peak - before > budget ? 3 : 0);
    }
    struct timespec start, now, pause = { 0, 20000 };
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) return -5;
            if (WIFSIGNALED(status)) return WTERMSIG(status);
            if (WIFEXITED(status) && WEXITSTATUS(status) == 3) return -4;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        if (r < 0 && errno != EINTR) return -3;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9 > timeout_seconds * wall_factor) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return -2;
        }
        nanosleep(&pause, NULL);
        if (pause.tv_nsec < 10000000) pause.tv_nsec *= 2;
    }
}

#endif
