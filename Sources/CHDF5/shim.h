/* HDF5 C API (pkg-config "hdf5"; Debian: libhdf5-dev). Several HDF5 constants are macros
   that expand to function calls (H5T_NATIVE_FLOAT is H5OPEN H5T_NATIVE_FLOAT_g), which
   Swift cannot import; these static inline functions expose them. */
#include <hdf5.h>
#include "preflight.h"
static inline hid_t eh5_native_float(void)  { return H5T_NATIVE_FLOAT; }
static inline hid_t eh5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t eh5_native_int32(void)  { return H5T_NATIVE_INT32; }
static inline hid_t eh5_native_int64(void)  { return H5T_NATIVE_INT64; }
static inline hid_t eh5_native_uint8(void)  { return H5T_NATIVE_UINT8; }
static inline hid_t eh5_c_s1(void)          { return H5T_C_S1; }
static inline unsigned eh5_acc_trunc(void)  { return H5F_ACC_TRUNC; }
static inline unsigned eh5_acc_excl(void)   { return H5F_ACC_EXCL; }
static inline unsigned eh5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned eh5_acc_rdwr(void)   { return H5F_ACC_RDWR; }
static inline hid_t eh5_p_default(void)     { return H5P_DEFAULT; }
static inline hid_t eh5_s_all(void)         { return H5S_ALL; }
static inline hid_t eh5_p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t eh5_p_group_create(void)   { return H5P_GROUP_CREATE; }
static inline hid_t eh5_p_file_create(void)    { return H5P_FILE_CREATE; }
static inline size_t eh5_variable(void)     { return H5T_VARIABLE; }
/* Stop HDF5 printing its error stack; callers turn failures into typed Swift errors. */
static inline void eh5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
