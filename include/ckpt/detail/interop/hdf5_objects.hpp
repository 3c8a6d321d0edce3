#pragma once

// The libhdf5 C API behind <ckpt/interop/hdf5.hpp>: owned identifiers, the types
// ckpt stores, attributes for metadata, and datasets.

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/interop/npy.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

// Dataset attribute naming a tensor's real dtype when it is stored as bits.
inline constexpr const char* hdf5_dtype_attribute = "__ckpt_dtype__";
// Root attribute listing the metadata keys whose values are stored as JSON
// text (objects, arrays, booleans, null) rather than as native attributes.
inline constexpr const char* hdf5_json_keys_attribute = "__ckpt_json_keys__";

namespace detail {

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Hdf5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Hdf5Id() = default;
  Hdf5Id(hid_t id, Closer close) : id_(id), close_(close) {}
  Hdf5Id(Hdf5Id&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Hdf5Id& operator=(Hdf5Id&& other) noexcept {
    std::swap(id_, other.id_);
    std::swap(close_, other.close_);
    return *this;
  }
  ~Hdf5Id() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
  }
  hid_t get() const noexcept { return id_; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// HDF5 prints its error stack to stderr by default; ckpt reports errors as
// exceptions instead. Not thread-safe: HDF5's error settings are global.
class Hdf5QuietErrors {
 public:
  Hdf5QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Hdf5QuietErrors() { H5Eset_auto2(H5E_DEFAULT, function_, data_); }
  Hdf5QuietErrors(const Hdf5QuietErrors&) = delete;
  Hdf5QuietErrors& operator=(const Hdf5QuietErrors&) = delete;

 private:
  H5E_auto2_t function_ = nullptr;
  void* data_ = nullptr;
};

// The most specific message on HDF5's error stack, which is then cleared.
inline std::string hdf5_error_text() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned depth, const H5E_error2_t* error, void* out) -> herr_t {
        if (depth == 0 && error->desc != nullptr) *static_cast<std::string*>(out) = error->desc;
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "HDF5 error" : text;
}

// Throws when an HDF5 call failed (returned a negative value).
template <class Result>
Result hdf5_check(Result result, ErrorId id, const std::string& file, const std::string& tensor,
                  const std::string& doing) {
  if (result >= 0) return result;
  const std::string what = join({doing, " failed: ", hdf5_error_text()});
  if (static_cast<int>(id) / 100 == 1) throw IoError(id, file, tensor, what);
  throw FormatError(id, file, tensor, what);
}

inline Hdf5Id hdf5_type(hid_t id) { return Hdf5Id(id, H5Tclose); }

// IEEE half precision, built the way h5py builds it, so h5py reads float16.
inline Hdf5Id hdf5_float16_type() {
  Hdf5Id type = hdf5_type(H5Tcopy(H5T_IEEE_F32LE));
  H5Tset_fields(type.get(), 15, 10, 5, 0, 10);
  H5Tset_size(type.get(), 2);
  H5Tset_ebias(type.get(), 15);
  return type;
}

// h5py stores numpy bools as this enum, and reads it back as bool.
inline Hdf5Id hdf5_bool_type() {
  Hdf5Id type = hdf5_type(H5Tenum_create(H5T_NATIVE_INT8));
  const std::int8_t no = 0, yes = 1;
  H5Tenum_insert(type.get(), "FALSE", &no);
  H5Tenum_insert(type.get(), "TRUE", &yes);
  return type;
}

// The little-endian HDF5 type of a dtype's stored bits, used both in the
// file and in memory (HDF5 converts from other byte orders when reading).
inline Hdf5Id hdf5_stored_type(DType dtype) {
  switch (npy_storage_dtype(dtype)) {
    case DType::BOOL: return hdf5_bool_type();
    case DType::F16: return hdf5_float16_type();
    case DType::U8: return hdf5_type(H5Tcopy(H5T_STD_U8LE));
    case DType::I8: return hdf5_type(H5Tcopy(H5T_STD_I8LE));
    case DType::U16: return hdf5_type(H5Tcopy(H5T_STD_U16LE));
    case DType::I16: return hdf5_type(H5Tcopy(H5T_STD_I16LE));
    case DType::U32: return hdf5_type(H5Tcopy(H5T_STD_U32LE));
    case DType::I32: return hdf5_type(H5Tcopy(H5T_STD_I32LE));
    case DType::U64: return hdf5_type(H5Tcopy(H5T_STD_U64LE));
    case DType::I64: return hdf5_type(H5Tcopy(H5T_STD_I64LE));
    case DType::F32: return hdf5_type(H5Tcopy(H5T_IEEE_F32LE));
    default: return hdf5_type(H5Tcopy(H5T_IEEE_F64LE));
  }
}

// The dtype of a dataset's HDF5 type, or nullopt when ckpt cannot hold it.
inline std::optional<DType> dtype_of_hdf5_type(hid_t type) {
  const std::size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      if (size == 1) return is_signed ? DType::I8 : DType::U8;
      if (size == 2) return is_signed ? DType::I16 : DType::U16;
      if (size == 4) return is_signed ? DType::I32 : DType::U32;
      if (size == 8) return is_signed ? DType::I64 : DType::U64;
      return std::nullopt;
    }
    case H5T_FLOAT: {
      if (size == 4) return DType::F32;
      if (size == 8) return DType::F64;
      std::size_t sign_position, exponent_position, exponent_size, mantissa_position, mantissa_size;
      H5Tget_fields(type, &sign_position, &exponent_position, &exponent_size, &mantissa_position, &mantissa_size);
      if (size == 2 && exponent_size == 5 && mantissa_size == 10) return DType::F16;
      return std::nullopt;
    }
    case H5T_ENUM: {
      int value = 0;
      if (size == 1 && H5Tget_nmembers(type) == 2 && H5Tenum_valueof(type, "FALSE", &value) >= 0 && value == 0 &&
          H5Tenum_valueof(type, "TRUE", &value) >= 0 && value == 1) {
        return DType::BOOL;
      }
      H5Eclear2(H5E_DEFAULT);
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

inline Hdf5Id hdf5_utf8_string_type() {
  Hdf5Id type = hdf5_type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

inline void write_hdf5_attribute(hid_t object, const char* name, hid_t type, const void* value, const std::string& file,
                                 const std::string& tensor) {
  Hdf5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Hdf5Id attribute(hdf5_check(H5Acreate2(object, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), ErrorId::io_write,
                              file, tensor, join({"creating attribute '", name, "'"})),
                   H5Aclose);
  hdf5_check(H5Awrite(attribute.get(), type, value), ErrorId::io_write, file, tensor,
             join({"writing attribute '", name, "'"}));
}

inline void write_hdf5_string_attribute(hid_t object, const char* name, const std::string& value,
                                        const std::string& file, const std::string& tensor) {
  const char* text = value.c_str();
  write_hdf5_attribute(object, name, hdf5_utf8_string_type().get(), &text, file, tensor);
}

// Strings and numbers become attributes of their own type; other JSON values
// are stored as JSON text and listed in hdf5_json_keys_attribute.
inline void write_hdf5_metadata(hid_t root, const nlohmann::json& metadata, const std::string& file) {
  if (metadata.is_null()) return;
  if (!metadata.is_object()) {
    throw ArgumentError(ErrorId::argument_invalid, file, "",
                        join({"expected metadata to be a JSON object, found ", metadata.type_name()}));
  }
  nlohmann::json json_keys = nlohmann::json::array();
  for (const auto& [key, value] : metadata.items()) {
    if (key == hdf5_json_keys_attribute || key.empty() || key.find('\0') != std::string::npos) {
      throw ArgumentError(ErrorId::argument_invalid, file, "",
                          join({"metadata key '", key, "' cannot be an HDF5 attribute"}));
    }
    if (value.is_string()) {
      write_hdf5_string_attribute(root, key.c_str(), value.get_ref<const std::string&>(), file, "");
    } else if (value.is_number_unsigned()) {
      const auto number = value.get<std::uint64_t>();
      write_hdf5_attribute(root, key.c_str(), H5T_NATIVE_UINT64, &number, file, "");
    } else if (value.is_number_integer()) {
      const auto number = value.get<std::int64_t>();
      write_hdf5_attribute(root, key.c_str(), H5T_NATIVE_INT64, &number, file, "");
    } else if (value.is_number_float()) {
      const auto number = value.get<double>();
      write_hdf5_attribute(root, key.c_str(), H5T_NATIVE_DOUBLE, &number, file, "");
    } else {
      write_hdf5_string_attribute(root, key.c_str(), value.dump(), file, "");
      json_keys.push_back(key);
    }
  }
  if (!json_keys.empty()) write_hdf5_string_attribute(root, hdf5_json_keys_attribute, json_keys.dump(), file, "");
}

// Chunks of about 1 MiB along the first axis, as gzip needs a chunked layout.
inline Hdf5Id hdf5_dataset_creation(const Shape& shape, std::size_t element_size, int deflate_level) {
  Hdf5Id properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (deflate_level < 0 || shape.empty() || element_count(shape) == 0) return properties;
  const std::uint64_t row_bytes = element_count(Shape(shape.begin() + 1, shape.end())) * element_size;
  constexpr std::uint64_t target_chunk_bytes = std::uint64_t(1) << 20, max_chunk_bytes = std::uint64_t(1) << 31;
  if (row_bytes >= max_chunk_bytes) return properties;
  std::vector<hsize_t> chunk(shape.begin(), shape.end());
  chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(shape[0], target_chunk_bytes / row_bytes));
  H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data());
  H5Pset_deflate(properties.get(), static_cast<unsigned>(deflate_level));
  return properties;
}

inline Hdf5Id hdf5_dataspace(const Shape& shape) {
  if (shape.empty()) return Hdf5Id(H5Screate(H5S_SCALAR), H5Sclose);
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Hdf5Id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

// HDF5 resolves "." and ".." and ignores repeated '/', so such names would
// not come back as they were written.
inline void check_hdf5_name(const std::string& name, const std::string& file) {
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = std::string_view(name).substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      throw ArgumentError(ErrorId::argument_name, file, name,
                          "expected '/'-separated parts that are not empty, '.' or '..' to name an HDF5 dataset");
    }
    if (end == name.size()) return;
    start = end + 1;
  }
}

inline void write_hdf5_dataset(hid_t root, const NamedTensor& tensor, int deflate_level, const std::string& file) {
  check_hdf5_name(tensor.name, file);
  const TensorView& view = tensor.view;
  const Hdf5Id type = hdf5_stored_type(view.dtype());
  const Hdf5Id space = hdf5_dataspace(view.shape());
  Hdf5Id link_properties(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(link_properties.get(), 1);
  const Hdf5Id creation = hdf5_dataset_creation(view.shape(), dtype_size(view.dtype()), deflate_level);
  Hdf5Id dataset(hdf5_check(H5Dcreate2(root, tensor.name.c_str(), type.get(), space.get(), link_properties.get(),
                                       creation.get(), H5P_DEFAULT),
                            ErrorId::io_write, file, tensor.name, "creating the dataset"),
                 H5Dclose);
  if (view.nbytes() != 0) {
    hdf5_check(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, view.data()), ErrorId::io_write, file,
               tensor.name, "writing the dataset");
  }
  if (npy_storage_dtype(view.dtype()) != view.dtype()) {
    write_hdf5_string_attribute(dataset.get(), hdf5_dtype_attribute, std::string(dtype_name(view.dtype())), file,
                                tensor.name);
  }
}

// Reads a scalar string attribute (fixed or variable length).
inline std::string read_hdf5_string(hid_t attribute, hid_t type, const std::string& file, const std::string& tensor,
                                    const std::string& name) {
  const std::string doing = join({"reading attribute '", name, "'"});
  if (H5Tis_variable_str(type) > 0) {
    const Hdf5Id memory = hdf5_utf8_string_type();
    char* text = nullptr;
    hdf5_check(H5Aread(attribute, memory.get(), &text), ErrorId::format_metadata, file, tensor, doing);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  std::string value(H5Tget_size(type), '\0');
  hdf5_check(H5Aread(attribute, type, value.data()), ErrorId::format_metadata, file, tensor, doing);
  return value.substr(0, value.find('\0'));
}

// Root attributes of scalar string or number type become metadata entries.
inline nlohmann::json read_hdf5_metadata(hid_t root, const std::string& file) {
  struct Visit {
    const std::string* file;
    nlohmann::json metadata = nlohmann::json::object();
  } visit{&file};
  auto on_attribute = [](hid_t object, const char* name, const H5A_info_t*, void* data) -> herr_t {
    auto& [file_name, metadata] = *static_cast<Visit*>(data);
    Hdf5Id attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
    Hdf5Id type(H5Aget_type(attribute.get()), H5Tclose);
    Hdf5Id space(H5Aget_space(attribute.get()), H5Sclose);
    if (attribute.get() < 0 || type.get() < 0 || H5Sget_simple_extent_npoints(space.get()) != 1) return 0;
    const H5T_class_t kind = H5Tget_class(type.get());
    if (kind == H5T_STRING) {
      metadata[name] = read_hdf5_string(attribute.get(), type.get(), *file_name, "", name);
    } else if (kind == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE) {
      std::uint64_t value = 0;
      if (H5Aread(attribute.get(), H5T_NATIVE_UINT64, &value) >= 0) metadata[name] = value;
    } else if (kind == H5T_INTEGER) {
      std::int64_t value = 0;
      if (H5Aread(attribute.get(), H5T_NATIVE_INT64, &value) >= 0) metadata[name] = value;
    } else if (kind == H5T_FLOAT) {
      double value = 0;
      if (H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, &value) >= 0) metadata[name] = value;
    }
    return 0;
  };
  hsize_t position = 0;
  hdf5_check(H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_INC, &position, on_attribute, &visit), ErrorId::format_metadata,
             file, "", "reading the root attributes");
  nlohmann::json& metadata = visit.metadata;
  if (const auto listed = metadata.find(hdf5_json_keys_attribute); listed != metadata.end()) {
    const nlohmann::json keys = nlohmann::json::parse(listed->get<std::string>(), nullptr, false);
    metadata.erase(listed);
    if (!keys.is_array()) {
      throw FormatError(ErrorId::format_metadata, file, "", join({hdf5_json_keys_attribute, " is not a JSON array"}));
    }
    for (const nlohmann::json& key : keys) {
      auto value = key.is_string() ? metadata.find(key.get<std::string>()) : metadata.end();
      if (value == metadata.end() || !value->is_string()) {
        throw FormatError(ErrorId::format_metadata, file, "",
                          join({"metadata key ", key.dump(), " is not a stored JSON text"}));
      }
      *value = nlohmann::json::parse(value->get<std::string>(), nullptr, false);
      if (value->is_discarded()) {
        throw FormatError(ErrorId::format_metadata, file, "",
                          join({"metadata key ", key.dump(), " holds invalid JSON"}));
      }
    }
  }
  return metadata;
}

// The real dtype recorded beside a BF16/F8 tensor stored as bits.
inline std::optional<DType> read_hdf5_dtype_attribute(hid_t dataset, const std::string& file,
                                                      const std::string& tensor) {
  if (H5Aexists(dataset, hdf5_dtype_attribute) <= 0) return std::nullopt;
  Hdf5Id attribute(H5Aopen(dataset, hdf5_dtype_attribute, H5P_DEFAULT), H5Aclose);
  Hdf5Id type(H5Aget_type(attribute.get()), H5Tclose);
  const std::string name = read_hdf5_string(attribute.get(), type.get(), file, tensor, hdf5_dtype_attribute);
  const auto dtype = dtype_from_name(name);
  if (!dtype)
    throw FormatError(ErrorId::format_tensor_entry, file, tensor,
                      join({"unknown dtype '", name, "' in ", hdf5_dtype_attribute}));
  return dtype;
}

inline Tensor read_hdf5_dataset(hid_t file_id, const std::string& tensor, std::uint64_t file_size,
                                const std::string& file) {
  auto fail = [&](const std::string& what) -> Tensor {
    throw FormatError(ErrorId::format_tensor_entry, file, tensor, what);
  };
  Hdf5Id dataset(hdf5_check(H5Dopen2(file_id, tensor.c_str(), H5P_DEFAULT), ErrorId::format_tensor_entry, file, tensor,
                            "opening the dataset"),
                 H5Dclose);
  const Hdf5Id file_type(H5Dget_type(dataset.get()), H5Tclose);
  const Hdf5Id space(H5Dget_space(dataset.get()), H5Sclose);
  const auto stored = dtype_of_hdf5_type(file_type.get());
  if (!stored) return fail("unsupported HDF5 element type; expected bool, (u)int8..64 or float16/32/64");
  const H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  if (space_class != H5S_SCALAR && space_class != H5S_SIMPLE) return fail("dataset has no dataspace (H5S_NULL)");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);

  DType dtype = *stored;
  if (const auto real = read_hdf5_dtype_attribute(dataset.get(), file, tensor)) {
    if (npy_storage_dtype(*real) != *stored) {
      return fail(join({hdf5_dtype_attribute, " says ", dtype_name(*real), ", expected ",
                        dtype_name(npy_storage_dtype(*real)), " bits, found ", dtype_name(*stored)}));
    }
    dtype = *real;
  }
  const Shape shape(dims.begin(), dims.end());
  const auto bytes = checked_byte_size(dtype, shape);
  // Compressed data cannot expand beyond deflate's ratio: refuse sizes no
  // file of this size can hold before allocating them.
  if (!bytes || *bytes / deflate_max_ratio > file_size)
    return fail(join({"shape ", shape_to_string(shape), " is larger than the file can hold"}));
  Tensor result = Tensor::allocate(dtype, shape);
  if (*bytes != 0) {
    const Hdf5Id memory_type = hdf5_stored_type(dtype);
    hdf5_check(H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, result.mutable_data()),
               ErrorId::format_tensor_entry, file, tensor, "reading the dataset");
  }
  return result;
}

// Names of all datasets under the root, as "group/sub/dataset", sorted.
template <class LinkInfo>  // H5L_info_t in HDF5 1.10, H5L_info2_t from 1.12
herr_t collect_hdf5_dataset(hid_t root, const char* name, const LinkInfo* info, void* names) {
  if (info->type != H5L_TYPE_HARD) return 0;
  const hid_t object = H5Oopen(root, name, H5P_DEFAULT);
  if (object < 0) return -1;
  if (H5Iget_type(object) == H5I_DATASET) static_cast<std::vector<std::string>*>(names)->push_back(name);
  H5Oclose(object);
  return 0;
}

}  // namespace detail
}  // namespace ckpt
