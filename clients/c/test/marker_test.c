/*
 * marker_test LIB: dlopens the forward-marker library (build/libagaobs_marker.so),
 * checks that each marker is its own exported function (dlsym/dladdr name
 * each address after itself, begin != end), calls each many times from two
 * threads, and checks the ABI version. Exit status 0 on success.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "agaobs_marker.h"

typedef void (*marker_fn)(int);
typedef int (*version_fn)(void);

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)

static marker_fn begin_fn, end_fn;

static void *caller(void *arg)
{
    int layer = (int)(long)arg;
    for (int i = 0; i < 100000; i++) {
        begin_fn(layer);
        end_fn(layer);
    }
    return NULL;
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    CHECK(p != NULL, "dlsym(%s): %s", name, dlerror());
    if (p != NULL) {
        Dl_info info;
        memset(&info, 0, sizeof info);
        CHECK(dladdr(p, &info) != 0 && info.dli_sname != NULL && strcmp(info.dli_sname, name) == 0,
              "dladdr(%s) names %s", name, info.dli_sname ? info.dli_sname : "(null)");
        CHECK(info.dli_saddr == p, "%s: symbol address %p != %p", name, info.dli_saddr, p);
    }
    return p;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "build/libagaobs_marker.so";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "FAIL dlopen(%s): %s\n", path, dlerror());
        return 1;
    }
    *(void **)&begin_fn = sym(lib, "agaobs_forward_begin");
    *(void **)&end_fn = sym(lib, "agaobs_forward_end");
    version_fn version = NULL;
    *(void **)&version = sym(lib, "agaobs_marker_abi_version");
    if (begin_fn == NULL || end_fn == NULL || version == NULL)
        return 1;
    CHECK((void *)begin_fn != (void *)end_fn, "begin and end share an address");
    CHECK(version() == AGAOBS_MARKER_ABI_VERSION, "abi version %d, want %d", version(),
          AGAOBS_MARKER_ABI_VERSION);

    begin_fn(0);
    end_fn(0);
    begin_fn(-1);
    end_fn(2147483647);

    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, caller, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);

    CHECK(dlclose(lib) == 0, "dlclose: %s", dlerror());
    if (failures) {
        fprintf(stderr, "marker_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("marker_test: all passed (%s)\n", path);
    return 0;
}
