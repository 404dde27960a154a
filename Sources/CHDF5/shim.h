#ifndef BEHEMOTH_HDF5_SHIM_H
#define BEHEMOTH_HDF5_SHIM_H
#include <hdf5.h>

/* HDF5's type and property constants are macros over globals that need H5open() first;
   Swift cannot import them, so each is read through a getter. */
static inline hid_t    chdf5_native_float(void)  { return H5T_NATIVE_FLOAT; }
static inline hid_t    chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t    chdf5_native_int8(void)   { return H5T_NATIVE_INT8; }
static inline hid_t    chdf5_native_uint8(void)  { return H5T_NATIVE_UINT8; }
static inline hid_t    chdf5_native_int32(void)  { return H5T_NATIVE_INT32; }
static inline hid_t    chdf5_native_int64(void)  { return H5T_NATIVE_INT64; }
static inline hid_t    chdf5_ieee_f32le(void)    { return H5T_IEEE_F32LE; }
static inline hid_t    chdf5_std_i32le(void)     { return H5T_STD_I32LE; }
static inline hid_t    chdf5_std_i64le(void)     { return H5T_STD_I64LE; }
static inline hid_t    chdf5_std_i8le(void)      { return H5T_STD_I8LE; }
static inline hid_t    chdf5_std_u8le(void)      { return H5T_STD_U8LE; }
static inline hid_t    chdf5_c_s1(void)          { return H5T_C_S1; }
static inline hid_t    chdf5_p_default(void)     { return H5P_DEFAULT; }
static inline hid_t    chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t    chdf5_p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t    chdf5_p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t    chdf5_e_default(void)     { return H5E_DEFAULT; }
static inline hid_t    chdf5_s_all(void)         { return H5S_ALL; }
static inline unsigned chdf5_f_acc_trunc(void)   { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_f_acc_excl(void)    { return H5F_ACC_EXCL; }
static inline unsigned chdf5_f_acc_rdonly(void)  { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_f_acc_rdwr(void)    { return H5F_ACC_RDWR; }
static inline size_t   chdf5_variable(void)      { return H5T_VARIABLE; }
static inline hid_t    chdf5_p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t    chdf5_p_file_create(void) { return H5P_FILE_CREATE; }
/* Links and attributes kept in the (checksummed) object header, never in dense storage, whose
   fractal heap blocks carry no checksum: a damaged one crashes libhdf5 1.10. */
static inline herr_t   chdf5_set_compact_storage(hid_t plist, int links) {
    if (links && H5Pset_link_phase_change(plist, 65535, 16) < 0) return -1;
    return H5Pset_attr_phase_change(plist, 65535, 16);
}
/* The checksummed layout: superblock v3 and v2 object headers (HDF5 1.10 and later read it). */
static inline herr_t   chdf5_set_libver_v110(hid_t fapl) { return H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST); }
#endif
