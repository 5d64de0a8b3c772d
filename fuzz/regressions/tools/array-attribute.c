/* Writes fuzz/regressions/FuzzTensorFile/array-attribute.h5: a valid tensor file whose root
   also holds attributes that are arrays (1,000 int64, 3 doubles, 2 strings). Before the fix,
   HDF5File.attributes() read every attribute into one scalar, so H5Aread wrote 8,000 bytes
   into an 8-byte stack variable. Build and run:
     cc -I/usr/include/hdf5/serial array-attribute.c -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -o /tmp/aa && /tmp/aa OUT.h5 */
#include <hdf5.h>
#include <stdint.h>
int main(int argc, char **argv) {
    hid_t f = H5Fcreate(argc > 1 ? argv[1] : "array-attribute.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t vstr = H5Tcopy(H5T_C_S1); H5Tset_size(vstr, H5T_VARIABLE); H5Tset_cset(vstr, H5T_CSET_UTF8);
    const char *format = "tensor-tree/1";
    hid_t a = H5Acreate2(f, "eidetic.format", vstr, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vstr, &format); H5Aclose(a);
    static int64_t many[1000];
    for (int i = 0; i < 1000; i++) many[i] = i;
    hsize_t n = 1000;
    hid_t s = H5Screate_simple(1, &n, NULL);
    a = H5Acreate2(f, "step", H5T_NATIVE_INT64, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, many); H5Aclose(a); H5Sclose(s);
    double three[3] = { 1, 2, 3 }; n = 3;
    s = H5Screate_simple(1, &n, NULL);
    a = H5Acreate2(f, "lr", H5T_NATIVE_DOUBLE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, three); H5Aclose(a); H5Sclose(s);
    const char *two[2] = { "a", "b" }; n = 2;
    s = H5Screate_simple(1, &n, NULL);
    a = H5Acreate2(f, "names", vstr, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vstr, two); H5Aclose(a); H5Sclose(s);
    float x[2] = { 1.5f, -2 }; n = 2;
    s = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x); H5Dclose(d); H5Sclose(s);
    H5Tclose(vstr); H5Sclose(scalar); H5Fclose(f);
    return 0;
}
