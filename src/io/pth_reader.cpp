// The .pth reader: lists the zip (zip_reader), unpickles <root>/data.pkl (pickle) and turns each
// _rebuild_tensor_v2 view into a Tensor after checking it against its storage (spec §4.1–4.2).
#include "io/pth_reader.hpp"

#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <unordered_map>

#include "io/error.hpp"
#include "io/mapped_file.hpp"
#include "io/pickle.hpp"
#include "io/zip_reader.hpp"

namespace rwkv {

namespace {

std::string ints_string(const std::vector<int64_t>& v) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << ']';
  return s.str();
}

// Builds the tensor `view` describes over the bytes of its storage. Hostile sizes, strides and
// offsets are caught with overflow-checked arithmetic before any byte is touched.
Tensor make_tensor(const std::string& path, const std::string& name, const pickle::TensorView& view,
                   std::span<const uint8_t> storage, const std::shared_ptr<const MappedFile>& file) {
  const DType dtype = view.storage->dtype;
  const uint64_t item = dtype_bytes(dtype, 1);
  const uint64_t storage_numel = static_cast<uint64_t>(view.storage->numel);
  const size_t ndim = view.size.size();
  auto describe = [&] {
    return "tensor '" + name + "' (storage offset " + std::to_string(view.storage_offset) + ", size " +
           ints_string(view.size) + ", stride " + ints_string(view.stride) + ")";
  };

  uint64_t numel = 1;
  for (int64_t s : view.size)
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(s), &numel))
      fail(path, ": ", describe(), " has too many elements");
  if (numel > 0) {
    // The highest element the view reaches: offset + sum((size - 1) * stride).
    uint64_t last = static_cast<uint64_t>(view.storage_offset);
    bool overflow = false;
    for (size_t d = 0; d < ndim; ++d) {
      uint64_t step;
      overflow |= __builtin_mul_overflow(static_cast<uint64_t>(view.size[d] - 1),
                                         static_cast<uint64_t>(view.stride[d]), &step);
      overflow |= __builtin_add_overflow(last, step, &last);
    }
    if (overflow || last >= storage_numel)
      fail(path, ": ", describe(), " reaches outside its storage of ", storage_numel, " elements");
    // Only a view whose elements overlap (a broadcast, stride 0) can have more elements than its
    // storage; copying it could multiply the file's size, so it is refused.
    if (numel > storage_numel)
      fail(path, ": ", describe(),
           " has more elements than its storage (overlapping views are not supported)");
  }

  Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = view.size;

  // Row-major contiguous means stride[d] == product of the later sizes, for every dimension that
  // has more than one element (a size-1 dimension's stride is arbitrary, e.g. (1, 1, C) vectors).
  bool contiguous = true;
  uint64_t expected = 1;
  for (size_t d = ndim; d-- > 0;) {
    if (view.size[d] != 1 && static_cast<uint64_t>(view.stride[d]) != expected) contiguous = false;
    expected *= static_cast<uint64_t>(view.size[d]);  // <= numel: no overflow
  }
  if (numel == 0 || contiguous) {
    // Zero copy: the mapping stays alive as long as the tensor.
    t.data = storage.data() + (numel == 0 ? 0 : static_cast<size_t>(view.storage_offset) * item);
    t.owner = file;
    t.mapped = true;
    return t;
  }

  // A strided view: gather it into row-major order, walking the index like an odometer.
  std::vector<uint8_t> bytes(static_cast<size_t>(numel * item));
  std::vector<int64_t> index(ndim, 0);
  uint64_t source = static_cast<uint64_t>(view.storage_offset);
  for (uint64_t i = 0; i < numel; ++i) {
    std::memcpy(bytes.data() + i * item, storage.data() + source * item, item);
    for (size_t d = ndim; d-- > 0;) {
      if (++index[d] < view.size[d]) {
        source += static_cast<uint64_t>(view.stride[d]);
        break;
      }
      source -= static_cast<uint64_t>(view.stride[d]) * static_cast<uint64_t>(view.size[d] - 1);
      index[d] = 0;
    }
  }
  return make_owned_tensor(name, dtype, view.size, std::move(bytes));
}

}  // namespace

TensorSet read_pth(const std::string& path) {
  std::shared_ptr<const MappedFile> file = MappedFile::open(path);
  const std::span<const uint8_t> archive(file->data(), file->size());
  if (archive.size() < 4 || std::memcmp(archive.data(), "PK\x03\x04", 4) != 0)
    fail(path, ": not a PyTorch zip checkpoint (legacy or unknown format)");

  const std::vector<ZipEntry> entries = list_zip(archive, path);
  std::unordered_map<std::string, const ZipEntry*> by_name;
  const ZipEntry* pickle_entry = nullptr;
  for (const ZipEntry& e : entries) {
    if (!by_name.emplace(e.name, &e).second) fail(path, ": zip entry '", e.name, "' appears twice");
    // Spec §4.1: <root> is whatever directory holds data.pkl.
    if (e.name == "data.pkl" || e.name.ends_with("/data.pkl")) {
      if (pickle_entry) fail(path, ": several data.pkl entries ('", pickle_entry->name, "', '", e.name, "')");
      pickle_entry = &e;
    }
  }
  if (!pickle_entry) fail(path, ": no data.pkl entry (not a torch.save checkpoint)");
  const std::string root = pickle_entry->name.substr(0, pickle_entry->name.size() - std::strlen("data.pkl"));

  // Spec §4.1: a missing byteorder means little-endian.
  if (auto it = by_name.find(root + "byteorder"); it != by_name.end()) {
    std::span<const uint8_t> b = zip_entry_data(archive, *it->second, path);
    std::string order(b.begin(), b.end());
    while (!order.empty() && std::isspace(static_cast<unsigned char>(order.back()))) order.pop_back();
    if (order == "big") fail(path, ": big-endian checkpoint (byteorder 'big') is not supported");
    if (order != "little") fail(path, ": unknown byteorder '", order.substr(0, 32), "'");
  }

  const pickle::Unpickled pickled =
      pickle::unpickle(zip_entry_data(archive, *pickle_entry, path), path + ": " + pickle_entry->name);
  const pickle::Dict* top = pickle::as<pickle::Dict>(pickled.root());
  if (!top)
    fail(path, ": the pickled object is a ", pickle::type_name(pickled.root()),
         ", expected a dict of tensors");

  TensorSet set;
  set.source = path;
  std::map<std::string, const pickle::Storage*> storages;  // by key: several tensors may share one
  for (const auto& [key, value] : top->items) {
    const pickle::TensorView* view = pickle::as<pickle::TensorView>(value);
    if (!view) continue;  // e.g. non-tensor entries of a checkpoint dict
    const pickle::Str* name = pickle::as<pickle::Str>(key);
    if (!name) fail(path, ": a tensor is keyed by a ", pickle::type_name(key), ", not a string");
    const pickle::Storage& storage = *view->storage;

    auto [seen, fresh] = storages.emplace(storage.key, &storage);
    if (!fresh && (seen->second->dtype != storage.dtype || seen->second->numel != storage.numel))
      fail(path, ": tensor '", name->text, "': storage '", storage.key,
           "' is declared with two different types or sizes");

    const std::string entry_name = root + "data/" + storage.key;
    auto it = by_name.find(entry_name);
    if (it == by_name.end())
      fail(path, ": tensor '", name->text, "': storage entry '", entry_name, "' is missing");
    const std::span<const uint8_t> bytes = zip_entry_data(archive, *it->second, path);
    // Spec §4.2: the entry holds exactly numel elements (compared without multiplying, which a
    // hostile numel could overflow).
    const uint64_t item = dtype_bytes(storage.dtype, 1);
    if (bytes.size() % item != 0 || bytes.size() / item != static_cast<uint64_t>(storage.numel))
      fail(path, ": tensor '", name->text, "': storage entry '", entry_name, "' holds ", bytes.size(),
           " bytes, expected ", storage.numel, " ", dtype_name(storage.dtype), " elements of ", item,
           " bytes");
    set.add(make_tensor(path, name->text, *view, bytes, file));
  }
  return set;
}

}  // namespace rwkv
