/* Optional accelerator for ratchet_sel: WebSocket XOR masking in C.
 *
 * Nothing else lives here.  ratchet_sel.accelerator imports it when it was
 * built and falls back to the pure-Python reference in rfc6455.py otherwise;
 * both give the same bytes for every input (tests/test_speedups.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* dst[i] = src[i] ^ mask[i % 4]; dst may be src.  Eight bytes per step
 * (memcpy keeps unaligned access legal; compilers turn it into plain loads). */
static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t size, const unsigned char *mask)
{
    unsigned char wide[8];
    uint64_t key, word;
    Py_ssize_t i = 0;

    for (int k = 0; k < 8; k++)
        wide[k] = mask[k & 3];
    memcpy(&key, wide, 8);
    for (; i + 8 <= size; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= key;
        memcpy(dst + i, &word, 8);
    }
    for (; i < size; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

static int
check_mask(Py_buffer *mask)
{
    if (mask->len == 4)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the mask must be 4 bytes");
    return -1;
}

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask))
        return NULL;
    if (check_mask(&mask) == 0) {
        result = PyBytes_FromStringAndSize(NULL, data.len);
        if (result != NULL)
            xor_mask((unsigned char *)PyBytes_AS_STRING(result), data.buf, data.len, mask.buf);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyObject *
apply_mask_inplace(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    int failed;

    if (!PyArg_ParseTuple(args, "w*y*:apply_mask_inplace", &data, &mask))
        return NULL;
    failed = check_mask(&mask);
    if (!failed)
        xor_mask(data.buf, data.buf, data.len, mask.buf);
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes: data XOR the 4-byte mask repeated."},
    {"apply_mask_inplace", apply_mask_inplace, METH_VARARGS,
     "apply_mask_inplace(buffer, mask): XOR a writable buffer with the 4-byte mask repeated, in place."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "ratchet_sel._speedups",
    "WebSocket masking in C (optional; see ratchet_sel.accelerator).", -1, speedups_methods
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
