/* libFuzzer entry points for kdns's C replay (kdns/server/_hotpath.c): a thin shell around an
 * embedded CPython that imports a sanitizer-built copy of the extension and hands every input to
 * fuzz/native/harness.py, which decodes it into calls of the module's API (key, answer, store,
 * drain, ...) and checks each result against the pure-Python twin kdns/server/replay.py.
 *
 * Why a C shell rather than atheris: the extension is built with -fsanitize=fuzzer-no-link, so its
 * edge counters register with this binary's libFuzzer and guide mutation by coverage of the C code
 * itself; CPython (not instrumented) adds no noise. build.sh bakes the paths in (KDNS_ROOT: the
 * checkout, KDNS_PYTHON: the venv's interpreter, KDNS_MODULE: the sanitized extension).
 *
 * A Python exception escaping the harness is a finding (a mismatch with the twin, or an error the
 * API must not raise): it is printed and the process aborts, so libFuzzer saves the input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if !defined(KDNS_ROOT) || !defined(KDNS_PYTHON) || !defined(KDNS_MODULE)
#error "build with fuzz/native/build.sh: it defines KDNS_ROOT, KDNS_PYTHON and KDNS_MODULE"
#endif

/* CPython keeps objects alive until exit on purpose (interned strings, module state): leak reports
 * at exit would be its, not the extension's. Reference leaks are the harness's check (refcounts of
 * its own objects after every input) and the long run's (RSS stays flat). */
const char *__asan_default_options(void) { return "detect_leaks=0:allocator_may_return_null=1:quarantine_size_mb=64"; }
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

static PyObject *one_input;

static void fail(const char *what) {
    fprintf(stderr, "kdns fuzz driver: %s\n", what);
    if (PyErr_Occurred()) PyErr_Print();
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* Every object its own malloc (not pymalloc's arenas), so ASan sees a write past a bytes object
     * the extension fills. */
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    pre.allocator = PYMEM_ALLOCATOR_MALLOC;
    if (PyStatus_Exception(Py_PreInitialize(&pre))) fail("cannot pre-initialize Python");

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* SIGINT, SIGALRM stay libFuzzer's */
    config.parse_argv = 0;
    /* The venv's interpreter as sys.executable: sys.prefix becomes the venv (its pyvenv.cfg), so
     * kdns's dependencies import as in the test suite. */
    PyStatus status = PyConfig_SetBytesString(&config, &config.executable, KDNS_PYTHON);
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) fail("cannot initialize Python");

    /* The harness as a module of its own (its dataclasses need a sys.modules entry). */
    static const char load[] =
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('kdns_fuzz_native', root + '/fuzz/native/harness.py')\n"
        "harness = importlib.util.module_from_spec(spec)\n"
        "sys.modules[spec.name] = harness\n"
        "spec.loader.exec_module(harness)\n"
        "harness.setup(root, module)\n"
        "one_input = harness.one_input\n";
    PyObject *globals = PyDict_New();
    if (globals == NULL || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) fail("no dict");
    PyObject *root = PyUnicode_FromString(KDNS_ROOT), *module = PyUnicode_FromString(KDNS_MODULE);
    if (root == NULL || module == NULL || PyDict_SetItemString(globals, "root", root) < 0 ||
        PyDict_SetItemString(globals, "module", module) < 0)
        fail("no strings");
    Py_DECREF(root);
    Py_DECREF(module);
    PyObject *ran = PyRun_String(load, Py_file_input, globals, globals);
    if (ran == NULL) fail("cannot set up fuzz/native/harness.py");
    Py_DECREF(ran);
    one_input = PyDict_GetItemString(globals, "one_input"); /* borrowed; globals stays alive */
    if (one_input == NULL) fail("the harness has no one_input");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PyObject *arg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    PyObject *result = arg ? PyObject_CallOneArg(one_input, arg) : NULL;
    Py_XDECREF(arg);
    if (result == NULL) fail("the harness raised: a finding");
    Py_DECREF(result);
    return 0;
}
