// PyTorch zip checkpoints (torch.save): a restricted unpickler that understands state dicts
// and nothing else (no code execution, ever), and a writer of the same layout.
// libtorch 1.13's own unpickler rejects the SETITEM opcode these files use, hence our own.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>

#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"
#include "voxcpm/zip_archive.h"

namespace voxcpm {
namespace {

struct StorageType {
  const char* name;  // torch.<name>
  at::ScalarType type;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", at::kFloat}, {"BFloat16Storage", at::kBFloat16}, {"HalfStorage", at::kHalf},
    {"DoubleStorage", at::kDouble}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
};

// ---------------------------------------------------------------------------------------
// Restricted unpickler

struct Value;
using Ref = std::shared_ptr<Value>;
enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class Fn : uint8_t { None, RebuildTensorV2, RebuildParameter, OrderedDict, StorageType };

struct Value {
  Kind kind = Kind::None;
  Fn fn = Fn::None;                   // Global: what it is
  at::ScalarType dtype = at::kFloat;  // Global StorageType
  int64_t i = 0;                      // Int, Bool
  double f = 0;
  std::string s;                      // Str; Global "module.name"
  std::vector<Ref> items;             // Tuple, List; Dict as key, value, key, value, ...
  at::Tensor tensor;                  // Storage (1-D, all elements) or Tensor
};

const char* kind_name(Kind k) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
  return names[static_cast<int>(k)];
}

class Unpickler {
 public:
  // Maps a persistent storage id (key, dtype, element count) to a 1-D tensor of its bytes.
  using StorageFn = std::function<at::Tensor(const std::string&, at::ScalarType, int64_t)>;

  Unpickler(const uint8_t* data, size_t size, std::string where, StorageFn storage)
      : p_(data), begin_(data), end_(data + size), where_(std::move(where)), storage_(std::move(storage)) {}
  // Containers may nest arbitrarily deep or form cycles through the memo: empty them all
  // first so that releasing them never recurses.
  ~Unpickler() {
    for (auto& c : containers_) c->items.clear();
  }

  Ref run();

 private:
  static constexpr size_t kMaxStack = size_t{1} << 20, kMaxMarks = size_t{1} << 16, kMaxValues = size_t{1} << 21;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " at byte " + std::to_string(op_pos_));
  }
  const uint8_t* take(size_t n) {
    if (size_t(end_ - p_) < n) fail("truncated pickle");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  uint64_t arg(size_t n) { return zip::get_le(take(n), n); }
  Ref make(Kind k) {
    if (++values_ > kMaxValues) fail("pickle holds too many objects");
    auto v = std::make_shared<Value>();
    v->kind = k;
    if (k == Kind::Tuple || k == Kind::List || k == Kind::Dict) containers_.push_back(v);
    return v;
  }
  Ref make_int(int64_t i) {
    Ref v = make(Kind::Int);
    v->i = i;
    return v;
  }
  void push(Ref v) {
    if (stack_.size() >= kMaxStack) fail("pickle stack too deep");
    stack_.push_back(std::move(v));
  }
  Ref pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("pickle stack underflow");
    Ref v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top(Kind k, const char* op) {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail(std::string(op) + " on an empty stack");
    if (stack_.back()->kind != k)
      fail(std::string(op) + " expects a " + kind_name(k) + ", got a " + kind_name(stack_.back()->kind));
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK on the pickle stack");
    std::vector<Ref> items(std::make_move_iterator(stack_.begin() + marks_.back()), std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Ref tuple(std::vector<Ref> items) {
    Ref t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl) fail("truncated GLOBAL");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  void memo_put(uint64_t index) {
    if (stack_.empty()) fail("memo put on an empty stack");
    if (memo_.size() >= kMaxValues && !memo_.count(index)) fail("pickle memo too large");
    memo_[index] = stack_.back();
  }
  Ref memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " does not exist");
    return it->second;
  }

  Ref global(const std::string& module, const std::string& name);
  Ref reduce(const Ref& fn, const Ref& args);
  Ref persistent_load(const Ref& pid);

  const uint8_t *p_, *begin_, *end_;
  size_t op_pos_ = 0;
  std::string where_;
  StorageFn storage_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
  std::vector<Ref> containers_;
  size_t values_ = 0;
};

Ref Unpickler::global(const std::string& module, const std::string& name) {
  Ref g = make(Kind::Global);
  g->s = module + "." + name;
  if (g->s == "torch._utils._rebuild_tensor_v2") {
    g->fn = Fn::RebuildTensorV2;
  } else if (g->s == "torch._utils._rebuild_parameter") {
    g->fn = Fn::RebuildParameter;
  } else if (g->s == "collections.OrderedDict") {
    g->fn = Fn::OrderedDict;
  } else if (module == "torch") {
    for (const auto& st : kStorageTypes)
      if (name == st.name) {
        g->fn = Fn::StorageType;
        g->dtype = st.type;
      }
  }
  if (g->fn == Fn::None) fail("forbidden global '" + g->s.substr(0, 200) + "' (only state dicts of tensors are accepted)");
  return g;
}

Ref Unpickler::persistent_load(const Ref& pid) {
  const auto& it = pid->items;
  if (pid->kind != Kind::Tuple || it.size() != 5 || it[0]->kind != Kind::Str || it[0]->s != "storage" ||
      it[1]->kind != Kind::Global || it[1]->fn != Fn::StorageType || it[2]->kind != Kind::Str ||
      it[4]->kind != Kind::Int)
    fail("persistent id is not ('storage', <torch storage type>, key, location, numel)");
  if (it[4]->i < 0) fail("negative storage size");
  Ref st = make(Kind::Storage);
  st->tensor = storage_(it[2]->s, it[1]->dtype, it[4]->i);
  return st;
}

Ref Unpickler::reduce(const Ref& fn, const Ref& args) {
  if (fn->kind != Kind::Global) fail(std::string("REDUCE on a ") + kind_name(fn->kind));
  if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
  const auto& a = args->items;
  switch (fn->fn) {
    case Fn::OrderedDict:
      if (!a.empty()) fail("collections.OrderedDict called with arguments");
      return make(Kind::Dict);
    case Fn::RebuildParameter:
      if (a.empty() || a[0]->kind != Kind::Tensor) fail("torch._utils._rebuild_parameter without a tensor");
      return a[0];
    case Fn::RebuildTensorV2: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() < 4 || a.size() > 7 || a[0]->kind != Kind::Storage || a[1]->kind != Kind::Int ||
          a[2]->kind != Kind::Tuple || a[3]->kind != Kind::Tuple || a[2]->items.size() != a[3]->items.size())
        fail("bad arguments to torch._utils._rebuild_tensor_v2");
      const at::Tensor& storage = a[0]->tensor;
      const int64_t numel = storage.numel(), offset = a[1]->i;
      std::vector<int64_t> size, stride;
      // Checked in 128 bits: every element of the view must lie inside the storage.
      __int128 last = offset, count = 1;
      bool empty = false;
      for (size_t d = 0; d < a[2]->items.size(); ++d) {
        const Ref &n = a[2]->items[d], &s = a[3]->items[d];
        if (n->kind != Kind::Int || s->kind != Kind::Int || n->i < 0 || s->i < 0 || size.size() >= 64)
          fail("bad tensor size/stride");
        size.push_back(n->i);
        stride.push_back(s->i);
        if (n->i == 0) empty = true;
        last += __int128(n->i > 0 ? n->i - 1 : 0) * s->i;
        count *= n->i;
        if (count > (__int128(1) << 62)) count = __int128(1) << 62;
      }
      // Overlapping (stride-0) views are allowed but may not blow up far beyond their storage.
      if (offset < 0 || (empty ? offset > numel : last >= numel) || count > std::max<int64_t>(numel, 1 << 20))
        fail("tensor view (offset " + std::to_string(offset) + ", " + std::to_string(size.size()) +
             " dims) lies outside its storage of " + std::to_string(numel) + " elements");
      Ref t = make(Kind::Tensor);
      t->tensor = storage.as_strided(size, stride, offset);
      return t;
    }
    default:
      fail("global '" + fn->s + "' cannot be called");
  }
}

Ref Unpickler::run() {
  while (true) {
    op_pos_ = size_t(p_ - begin_);
    uint8_t op = *take(1);
    switch (op) {
      case 0x80: arg(1); break;  // PROTO
      case 0x95: arg(8); break;  // FRAME (framing is irrelevant when the whole pickle is mapped)
      case '.': {                // STOP
        Ref r = pop();
        if (!stack_.empty() || !marks_.empty()) fail("pickle stack not empty at STOP");
        return r;
      }
      case '}': push(make(Kind::Dict)); break;
      case ']': push(make(Kind::List)); break;
      case ')': push(make(Kind::Tuple)); break;
      case '(':
        if (marks_.size() >= kMaxMarks) fail("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case 's': {  // SETITEM
        Ref v = pop(), k = pop();
        Ref& d = top(Kind::Dict, "SETITEM");
        d->items.push_back(std::move(k));
        d->items.push_back(std::move(v));
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Ref> kv = pop_mark();
        if (kv.size() % 2) fail("SETITEMS with an odd number of items");
        Ref& d = top(Kind::Dict, "SETITEMS");
        for (auto& x : kv) d->items.push_back(std::move(x));
        break;
      }
      case 'a': {  // APPEND
        Ref v = pop();
        top(Kind::List, "APPEND")->items.push_back(std::move(v));
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Ref> xs = pop_mark();
        Ref& l = top(Kind::List, "APPENDS");
        for (auto& x : xs) l->items.push_back(std::move(x));
        break;
      }
      case 'X': case 0x8c: case 0x8d: {  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
        uint64_t n = arg(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
        if (n > uint64_t(end_ - p_)) fail("truncated string");
        Ref s = make(Kind::Str);
        s->s.assign(reinterpret_cast<const char*>(take(n)), n);
        push(std::move(s));
        break;
      }
      case 'J': push(make_int(int32_t(uint32_t(arg(4))))); break;  // BININT
      case 'K': push(make_int(int64_t(arg(1)))); break;            // BININT1
      case 'M': push(make_int(int64_t(arg(2)))); break;            // BININT2
      case 0x8a: {                                                 // LONG1
        uint64_t n = arg(1);
        if (n > 8) fail("integer wider than 64 bits");
        uint64_t v = zip::get_le(take(n), n);
        if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(int64_t(v)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const uint8_t* b = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = bits << 8 | b[i];
        Ref f = make(Kind::Float);
        std::memcpy(&f->f, &bits, 8);
        push(std::move(f));
        break;
      }
      case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
        Ref b = make(Kind::Bool);
        b->i = op == 0x88;
        push(std::move(b));
        break;
      }
      case 'N': push(make(Kind::None)); break;
      case 't': push(tuple(pop_mark())); break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<Ref> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(tuple(std::move(items)));
        break;
      }
      case 'q': memo_put(arg(1)); break;         // BINPUT
      case 'r': memo_put(arg(4)); break;         // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': push(memo_get(arg(1))); break;   // BINGET
      case 'j': push(memo_get(arg(4))); break;   // LONG_BINGET
      case 'Q': push(persistent_load(pop())); break;
      case 'R': {
        Ref args = pop(), fn = pop();
        push(reduce(fn, args));
        break;
      }
      case 'c': {
        std::string module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Ref name = pop(), module = pop();
        if (module->kind != Kind::Str || name->kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'b': {  // BUILD: only the harmless state of an OrderedDict (_metadata) or a tensor
        pop();
        if (stack_.empty() || (stack_.back()->kind != Kind::Dict && stack_.back()->kind != Kind::Tensor))
          fail("BUILD is only accepted on a dict or a tensor");
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unsupported pickle opcode ") + hex +
             (op >= 0x20 && op < 0x7f ? std::string(" ('") + char(op) + "')" : std::string()));
      }
    }
  }
}

// Tensors of the (possibly {"state_dict": ...}-wrapped) top-level dict; other values are skipped.
TensorMap state_dict_tensors(const Ref& top, const std::string& where) {
  if (top->kind != Kind::Dict) throw Error(where + ": top-level object is a " + kind_name(top->kind) + ", not a dict");
  const Value* sd = top.get();
  for (size_t i = 0; i + 1 < top->items.size(); i += 2)
    if (top->items[i]->kind == Kind::Str && top->items[i]->s == "state_dict" && top->items[i + 1]->kind == Kind::Dict)
      sd = top->items[i + 1].get();
  TensorMap out;
  for (size_t i = 0; i + 1 < sd->items.size(); i += 2) {
    if (sd->items[i + 1]->kind != Kind::Tensor) continue;
    if (sd->items[i]->kind != Kind::Str) throw Error(where + ": a tensor has a non-string key");
    out[sd->items[i]->s] = sd->items[i + 1]->tensor;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------

TensorMap read_torch_zip(const std::string& path) {
  zip::Reader archive(path, zip::map_file(path));
  const auto& entries = archive.entries();
  // <root>/data.pkl, whatever the root is called.
  std::string root;
  for (const auto& [name, e] : entries) {
    size_t slash = name.find('/');
    if (slash != std::string::npos && slash > 0 && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      root = name.substr(0, slash);
      break;
    }
  }
  if (root.empty()) throw Error(path + ": no <root>/data.pkl in the zip (not a PyTorch checkpoint)");
  if (entries.count(root + "/byteorder")) {
    const std::string bo = root + "/byteorder";
    std::string order(reinterpret_cast<const char*>(archive.data(bo)), std::min<uint64_t>(entries.at(bo).size, 16));
    if (order != "little") throw Error(path + ": byteorder '" + order + "' is not supported (only little)");
  }
  const std::string pkl = root + "/data.pkl";
  const uint8_t* pkl_data = archive.data(pkl);
  const zip::Entry& pkl_entry = entries.at(pkl);
  if (zip::Crc32::update(0, pkl_data, pkl_entry.size) != pkl_entry.crc)
    throw Error(path + ": zip entry '" + pkl + "': CRC mismatch (corrupt file)");

  struct Loaded {
    at::Tensor tensor;
    at::ScalarType type;
  };
  std::map<std::string, Loaded> storages;
  auto keep = archive.mapping();
  auto load_storage = [&](const std::string& key, at::ScalarType type, int64_t numel) -> at::Tensor {
    auto it = storages.find(key);
    if (it != storages.end()) {
      if (it->second.type != type || it->second.tensor.numel() != numel)
        throw Error(path + ": storage '" + key + "' is used with different types or sizes");
      return it->second.tensor;
    }
    const std::string name = root + "/data/" + key;
    if (!entries.count(name)) throw Error(path + ": storage entry '" + name + "' is missing");
    const size_t es = c10::elementSize(type);
    const uint64_t bytes = entries.at(name).size;
    if (bytes / es < uint64_t(numel) || bytes != uint64_t(numel) * es)
      throw Error(path + ": zip entry '" + name + "' has " + std::to_string(bytes) + " bytes, expected " +
                  std::to_string(numel) + " elements of " + std::to_string(es) + " bytes");
    uint8_t* ptr = static_cast<uint8_t*>(keep->data) + archive.data_offset(name);
    at::Tensor t;
    if (reinterpret_cast<uintptr_t>(ptr) % es == 0) {
      t = at::from_blob(ptr, {numel}, [keep](void*) {}, at::TensorOptions().dtype(type));
    } else {  // other writers may not align storages: copy rather than hand out misaligned data
      t = at::empty({numel}, at::TensorOptions().dtype(type));
      if (bytes) std::memcpy(t.data_ptr(), ptr, bytes);  // an empty tensor's data_ptr() is null
    }
    storages[key] = {t, type};
    return t;
  };
  Unpickler up(pkl_data, pkl_entry.size, path + ": " + pkl, load_storage);
  return state_dict_tensors(up.run(), path + ": " + pkl);
}

// ---------------------------------------------------------------------------------------
// Writer: the layout of torch.save({"state_dict": sd}) with pickle protocol 2:
// <root>/data.pkl, <root>/data/<n>, <root>/version.

namespace {

class PickleWriter {
 public:
  std::string out;
  void op(uint8_t o) { out.push_back(char(o)); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(char(v >> (8 * i)));
  }
  void str(const std::string& s) {
    op('X');
    le(s.size(), 4);
    out += s;
  }
  void integer(int64_t v) {  // as Python's pickler picks the opcode
    if (v >= 0 && v <= 0xff) {
      op('K');
      le(v, 1);
    } else if (v >= 0 && v <= 0xffff) {
      op('M');
      le(v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le(uint32_t(int32_t(v)), 4);
    } else {  // LONG1: fewest little-endian two's complement bytes that sign-extend back to v
      int n = 1;
      while (n < 8 && (int64_t(uint64_t(v) << (64 - 8 * n)) >> (64 - 8 * n)) != v) ++n;
      op(0x8a);
      le(n, 1);
      le(uint64_t(v), n);
    }
  }
  void ints(at::IntArrayRef v) {
    if (v.empty()) return op(')');
    if (v.size() > 3) op('(');
    for (int64_t x : v) integer(x);
    op(v.size() == 1 ? 0x85 : v.size() == 2 ? 0x86 : v.size() == 3 ? 0x87 : 't');
  }
  void global(const std::string& module, const std::string& name) {  // memoized like Python does
    const std::string key = module + "\n" + name + "\n";
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      if (it->second < 256) {
        op('h');
        le(it->second, 1);
      } else {
        op('j');
        le(it->second, 4);
      }
      return;
    }
    op('c');
    out += key;
    uint32_t id = uint32_t(memo_.size());
    memo_[key] = id;
    if (id < 256) {
      op('q');
      le(id, 1);
    } else {
      op('r');
      le(id, 4);
    }
  }

 private:
  std::map<std::string, uint32_t> memo_;
};

}  // namespace

void write_torch_zip(const std::string& path, const TensorMap& tensors, bool wrap_in_state_dict) {
  write_torch_zip(path, specs_of(tensors), producer_of(tensors), wrap_in_state_dict);
}

void write_torch_zip(const std::string& path, const std::vector<TensorSpec>& specs, const TensorProducer& produce,
                     bool wrap_in_state_dict) {
  std::vector<const char*> storages;
  for (const TensorSpec& s : specs) {
    const char* storage = nullptr;
    for (const auto& st : kStorageTypes)
      if (st.type == s.dtype) storage = st.name;
    if (!storage)
      throw Error(path + ": cannot write tensor '" + s.name + "' of dtype " + std::string(c10::toString(s.dtype)));
    for (int64_t d : s.shape)
      if (d < 0) throw Error(path + ": tensor '" + s.name + "' has a negative dimension");
    storages.push_back(storage);
  }
  // Pickle first (it is small and needs no tensor data), then stream one storage at a time.
  PickleWriter pk;
  pk.op(0x80);
  pk.op(2);
  pk.op('}');
  if (wrap_in_state_dict) {
    pk.str("state_dict");
    pk.op('}');
  }
  for (size_t batch = 0; batch < specs.size(); batch += 1000) {  // Python batches SETITEMS by 1000
    const size_t n = std::min<size_t>(1000, specs.size() - batch);
    if (n > 1) pk.op('(');
    for (size_t i = batch; i < batch + n; ++i) {
      const std::vector<int64_t>& shape = specs[i].shape;
      const int64_t dims = static_cast<int64_t>(shape.size());
      std::vector<int64_t> stride(shape.size());
      int64_t numel = 1;
      for (int64_t d = dims - 1, s = 1; d >= 0; s *= std::max<int64_t>(shape[d], 1), --d) stride[d] = s;
      for (int64_t d : shape) numel *= d;
      pk.str(specs[i].name);
      pk.global("torch._utils", "_rebuild_tensor_v2");
      pk.op('(');
      pk.op('(');
      pk.str("storage");
      pk.global("torch", storages[i]);
      pk.str(std::to_string(i));
      pk.str("cpu");
      pk.integer(numel);
      pk.op('t');
      pk.op('Q');  // BINPERSID
      pk.integer(0);
      pk.ints(shape);
      pk.ints(stride);
      pk.op(0x89);  // requires_grad=False
      pk.global("collections", "OrderedDict");
      pk.op(')');
      pk.op('R');
      pk.op('t');
      pk.op('R');
    }
    pk.op(n > 1 ? 'u' : 's');
  }
  if (wrap_in_state_dict) pk.op('s');
  pk.op('.');

  // torch names the root folder after the file, without directory and extension.
  std::string root = path.substr(path.find_last_of('/') + 1);
  root = root.substr(0, root.rfind('.'));
  if (root.empty()) root = "archive";
  zip::Writer archive(path);
  archive.add(root + "/data.pkl", pk.out.data(), pk.out.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const at::Tensor t = produce(i);
    if (!t.defined() || t.scalar_type() != specs[i].dtype || t.sizes() != at::IntArrayRef(specs[i].shape))
      throw Error(path + ": tensor '" + specs[i].name + "' was produced with another dtype or shape than announced");
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    archive.add(root + "/data/" + std::to_string(i), c.data_ptr(), c.nbytes());
  }
  archive.add(root + "/version", "3\n", 2);
  archive.finish();
}

TensorMap read_tensor_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  uint8_t head[9] = {};
  ssize_t n = pread(fd, head, sizeof head, 0);
  close(fd);
  if (n >= 4 && zip::get_le(head, 4) == zip::kLocalSig) return read_torch_zip(path);
  // safetensors: u64 header length, then a JSON object.
  if (n == 9 && head[8] == '{') return read_safetensors(path);
  throw Error(path + ": not a safetensors or PyTorch zip checkpoint");
}

}  // namespace voxcpm
