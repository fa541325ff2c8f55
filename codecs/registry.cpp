// The codec registry: one table of name -> factory, seeded with the built-in codecs.
#include <cxxabi.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <string_view>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/codec_author.h"
#include "sluice/error.h"

namespace sluice {

namespace {
// Chunks larger than this would overflow the 32-bit sizes that zlib and lz4 take.
constexpr std::size_t kMaxChunkBytes = std::size_t{1} << 30;
constexpr std::size_t kMinChunkBytes = std::size_t{1} << 10;

// A codec's own code (its factory, its magic test, the hooks behind the checked entry points):
// whatever it throws becomes an Error naming the codec, wherever it is called from: a batch
// reports it as that item's (a raw std::out_of_range ended the whole batch), and a caller of
// compress_part or a CompressNode catches sluice::Error (a raw int ended the program).
template <typename Call>
auto codec_call(const std::string& name, Call&& call) {
  try {
    return call();
  } catch (const Error&) {
    throw;
  } catch (const abi::__forced_unwind&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::kInternal, fmt::format("codec '{}': out of memory", name));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInternal, fmt::format("codec '{}': {}", name, e.what()));
  } catch (...) {
    throw Error(ErrorKind::kInternal, fmt::format("codec '{}' threw something not an exception", name));
  }
}
}  // namespace

struct CodecRegistry::State {
  mutable std::shared_mutex mutex;
  std::vector<codecs::CodecEntry> entries;

  const codecs::CodecEntry* find(const std::string& name) const {
    for (const auto& entry : entries)
      if (entry.info.name == name) return &entry;
    return nullptr;
  }
};

CodecRegistry::CodecRegistry() : state_(std::make_unique<State>()) {
  state_->entries = {codecs::gzip_entry(), codecs::zstd_entry(), codecs::lz4_entry()};
}

CodecRegistry::~CodecRegistry() = default;

CodecRegistry& CodecRegistry::global() {
  static CodecRegistry registry;
  return registry;
}

void CodecRegistry::add(CodecInfo info, CodecFactory factory) {
  if (info.name.empty() || !factory) throw Error(ErrorKind::kUsage, "a codec needs a name and a factory");
  // What create() takes as the defaults must be settings it accepts: else every create() with
  // default options would blame its caller for the codec's info.
  const auto refuse = [&](const std::string& what) {
    return Error(ErrorKind::kUsage, fmt::format("codec '{}' cannot be registered: {}", info.name, what));
  };
  if (info.min_level > info.max_level || info.default_level < info.min_level || info.default_level > info.max_level) {
    throw refuse(fmt::format("its default level {} is not within its levels {} to {}", info.default_level,
                             info.min_level, info.max_level));
  }
  if (info.default_chunk_bytes < kMinChunkBytes || info.default_chunk_bytes > kMaxChunkBytes) {
    throw refuse(
        fmt::format("its default chunk size must be between 1 KiB and 1 GiB, not {} bytes", info.default_chunk_bytes));
  }
  // Every chunk is handed this much of the stream before it, held while the chunk is in flight:
  // SIZE_MAX gave each chunk the whole stream so far (memory with the stream, time its square).
  if (info.history_bytes > kMaxChunkBytes)
    throw refuse(fmt::format("its history must be at most 1 GiB, not {} bytes", info.history_bytes));
  if (info.unfinished_mark.size() > 64)  // held for a signal handler, in fixed storage
    throw refuse(fmt::format("its unfinished mark must be at most 64 bytes, not {}", info.unfinished_mark.size()));
  // A name goes into flags, pipeline keys and messages: letters, digits and "+-._" only (one with
  // ESC or a newline was printed raw in every error naming the codec).
  if (info.name.size() > 64 || !std::ranges::all_of(info.name, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
               std::string_view("+-._").find(c) != std::string_view::npos;
      })) {
    throw Error(ErrorKind::kUsage, fmt::format("codec {} cannot be registered: a name is up to 64 letters, digits and "
                                               "+-._",
                                               printable_name(info.name)));
  }
  // Suffixes are looked up in any case, the first codec's match winning (a codec that wraps gzip
  // with gzip's info copied keeps its suffixes, which name gzip's files): one without its dot took
  // names that merely end so ("z": "a.tgz", "az").
  std::vector<std::string> suffixes = info.other_extensions;
  suffixes.insert(suffixes.end(), info.tar_suffixes.begin(), info.tar_suffixes.end());
  if (!info.extension.empty()) suffixes.push_back(info.extension);
  for (const auto& suffix : suffixes) {
    if (suffix.size() < 2 || suffix.front() != '.' || suffix.find('/') != std::string::npos)
      throw refuse(fmt::format("its suffix {} is not a dot and a name", printable_name(suffix)));
  }
  for (const auto& knob : info.knobs) {
    if (!knob.values.empty() && std::ranges::find(knob.values, knob.default_value) == knob.values.end())
      throw refuse(
          fmt::format("its setting '{}' defaults to '{}', not one of its values", knob.name, knob.default_value));
  }
  const auto same = [](const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::ranges::equal(a, b, [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  std::unique_lock lock(state_->mutex);
  for (const auto& entry : state_->entries) {
    if (same(entry.info.name, info.name)) {
      throw Error(ErrorKind::kUsage, fmt::format("a codec named '{}' is already registered", entry.info.name));
    }
  }
  state_->entries.push_back({std::move(info), std::move(factory)});
}

std::unique_ptr<Codec> CodecRegistry::create(const std::string& name, const CodecOptions& options) const {
  CodecFactory factory;
  {
    std::shared_lock lock(state_->mutex);
    const auto* entry = state_->find(name);
    if (!entry) {
      std::vector<std::string> known;
      for (const auto& e : state_->entries) known.push_back(e.info.name);
      throw Error(ErrorKind::kUsage,
                  fmt::format("unknown codec '{}' (known: {})", name, fmt::join(known, ", ")));
    }
    factory = entry->factory;
  }
  auto codec = codec_call(name, [&] { return factory(options); });
  if (!codec) throw Error(ErrorKind::kInternal, fmt::format("the factory for codec '{}' made nothing", name));
  // The engine cuts streams by it (a chunk size of 0 divided by zero: SIGFPE in the reader).
  const std::size_t chunk = codec_call(name, [&] { return codec->options().chunk_bytes; });
  if (chunk < kMinChunkBytes || chunk > kMaxChunkBytes) {
    throw Error(ErrorKind::kInternal,
                fmt::format("codec '{}' made with a chunk size of {} bytes (between 1 KiB and 1 GiB)", name, chunk));
  }
  return codec;
}

std::optional<CodecInfo> CodecRegistry::find(const std::string& name) const {
  std::shared_lock lock(state_->mutex);
  const auto* entry = state_->find(name);
  if (!entry) return std::nullopt;
  return entry->info;
}

std::string CodecRegistry::unfinished_mark(const std::string& codec) const {
  std::shared_lock lock(state_->mutex);
  const auto* entry = codec.empty() ? nullptr : state_->find(codec);
  return entry ? entry->info.unfinished_mark : std::string();
}

void StreamDecoder::decode_to(ByteView input, Output& output) {
  decode(input, [&output](ByteView bytes) { codecs::copy_to_output(bytes, output); });
}

// ---- The checked entry points over a codec's hooks (sluice/codec_author.h) ----

namespace {
template <typename Piece>
std::unique_ptr<Piece> required(std::unique_ptr<Piece> piece, const CodecInfo& info, const char* what) {
  if (!piece) throw Error(ErrorKind::kInternal, fmt::format("the {} codec made no {}", info.name, what));
  return piece;
}
}  // namespace

std::unique_ptr<ChunkCompressor> Codec::make_chunk_compressor() const {
  auto compressor = required(new_chunk_compressor(), info(), "chunk compressor");
  compressor->codec_name_ = info().name;
  return compressor;
}
namespace {
// A codec's framer with its exceptions made Errors naming the codec (codec_call).
class NamedFramer final : public StreamFramer {
 public:
  NamedFramer(std::unique_ptr<StreamFramer> framer, std::string codec_name)
      : framer_(std::move(framer)), codec_name_(std::move(codec_name)) {}
  void header(Buffer& out) override {
    codec_call(codec_name_, [&] { framer_->header(out); });
  }
  void add_chunk(const ChunkRecord& chunk) override {
    codec_call(codec_name_, [&] { framer_->add_chunk(chunk); });
  }
  void trailer(Buffer& out) override {
    codec_call(codec_name_, [&] { framer_->trailer(out); });
  }

 private:
  std::unique_ptr<StreamFramer> framer_;
  std::string codec_name_;
};
}  // namespace

std::unique_ptr<StreamFramer> Codec::make_framer(const StreamInfo& stream) const {
  return std::make_unique<NamedFramer>(required(new_framer(stream), info(), "stream framer"), info().name);
}
std::unique_ptr<FlushCompressor> Codec::make_flush_compressor() const {
  auto compressor = new_flush_compressor();
  if (compressor) compressor->codec_name_ = info().name;
  return compressor;
}
std::unique_ptr<FlushCompressor> Codec::new_flush_compressor() const { return nullptr; }
namespace {
// Runs the engine's callback, noting what it throws on its way out through the codec.
template <typename Call>
auto engine_call(std::exception_ptr& engines, Call&& call) {
  try {
    return call();
  } catch (...) {
    engines = std::current_exception();
    throw;
  }
}

// A codec's stream decoder and unit verifier the same way, as the compress side's hooks are: a
// decoder's std::runtime_error reached the caller as its bare message, an int as "unknown
// exception", neither naming the codec. What the engine's own callbacks throw through the
// decoder (`emit`, the Output's space() and produced(): a failing sink, the engine's own unwinding
// tags) goes back to the engine as it was thrown.
class NamedStreamDecoder final : public StreamDecoder {
 public:
  NamedStreamDecoder(std::unique_ptr<StreamDecoder> decoder, std::string codec_name)
      : decoder_(std::move(decoder)), codec_name_(std::move(codec_name)) {}
  void decode(ByteView input, const Emit& emit) override {
    std::exception_ptr engines;
    const Emit guarded = [&](ByteView bytes) { engine_call(engines, [&] { emit(bytes); }); };
    checked(engines, [&] { decoder_->decode(input, guarded); });
  }
  void decode_to(ByteView input, Output& output) override {
    std::exception_ptr engines;
    GuardedOutput guarded(output, engines);
    checked(engines, [&] { decoder_->decode_to(input, guarded); });
  }
  void finish() override {
    codec_call(codec_name_, [&] { decoder_->finish(); });
  }
  void resume_at(std::uint64_t offset) override {
    codec_call(codec_name_, [&] { decoder_->resume_at(offset); });
  }

 private:
  // Runs the codec: what the engine threw through it goes on unchanged, the codec's own becomes
  // an Error naming it.
  template <typename Call>
  void checked(const std::exception_ptr& engines, Call&& call) {
    try {
      call();
    } catch (...) {
      if (engines) std::rethrow_exception(engines);
      codec_call(codec_name_, [] { throw; });
    }
  }
  class GuardedOutput final : public Output {
   public:
    GuardedOutput(Output& output, std::exception_ptr& engines) : output_(output), engines_(engines) {}
    std::span<std::uint8_t> space() override {
      return engine_call(engines_, [&] { return output_.space(); });
    }
    void produced(std::size_t bytes) override {
      engine_call(engines_, [&] { output_.produced(bytes); });
    }
    std::size_t keeps_produced_bytes() const override { return output_.keeps_produced_bytes(); }

   private:
    Output& output_;
    std::exception_ptr& engines_;
  };

  std::unique_ptr<StreamDecoder> decoder_;
  std::string codec_name_;
};

std::unique_ptr<StreamDecoder> named(std::unique_ptr<StreamDecoder> decoder, const std::string& codec_name) {
  return decoder ? std::make_unique<NamedStreamDecoder>(std::move(decoder), codec_name) : nullptr;
}

class NamedUnitVerifier final : public UnitVerifier {
 public:
  NamedUnitVerifier(std::unique_ptr<UnitVerifier> verifier, std::string codec_name)
      : verifier_(std::move(verifier)), codec_name_(std::move(codec_name)) {}
  void on_marker(const Cut& cut, std::uint64_t offset) override {
    codec_call(codec_name_, [&] { verifier_->on_marker(cut, offset); });
  }
  void on_unit(const Cut& cut, ByteView decoded) override {
    codec_call(codec_name_, [&] { verifier_->on_unit(cut, decoded); });
  }
  void complete(const Cut& cut, ByteView unit, Buffer& decoded) override {
    codec_call(codec_name_, [&] { verifier_->complete(cut, unit, decoded); });
  }
  std::unique_ptr<StreamDecoder> serial_decoder() override {
    return named(codec_call(codec_name_, [&] { return verifier_->serial_decoder(); }), codec_name_);
  }

 private:
  std::unique_ptr<UnitVerifier> verifier_;
  std::string codec_name_;
};
}  // namespace

std::unique_ptr<StreamDecoder> Codec::make_decoder() const {
  return named(required(new_decoder(), info(), "stream decoder"), info().name);
}
std::unique_ptr<StreamSplitter> Codec::make_splitter() const {
  auto splitter = new_splitter();
  if (splitter) splitter->codec_name_ = info().name;
  return splitter;
}
// Asked for only when a splitter cut a unit.
std::unique_ptr<UnitDecoder> Codec::make_unit_decoder() const {
  auto decoder = required(new_unit_decoder(), info(), "unit decoder for the units its splitter cut");
  decoder->codec_name_ = info().name;
  return decoder;
}
std::unique_ptr<UnitVerifier> Codec::make_unit_verifier() const {
  auto verifier = new_unit_verifier();
  if (!verifier) return nullptr;
  return std::make_unique<NamedUnitVerifier>(std::move(verifier), info().name);
}
std::unique_ptr<StreamSplitter> Codec::new_splitter() const { return nullptr; }
std::unique_ptr<UnitDecoder> Codec::new_unit_decoder() const { return nullptr; }
std::unique_ptr<UnitVerifier> Codec::new_unit_verifier() const { return nullptr; }

StreamFacts Codec::describe_stream(ByteView stream) const {
  StreamFacts facts;
  try {
    facts = stream_facts(stream);
  } catch (const std::exception&) {
    return {};  // a codec's parse that gave up: only decoding tells
  }
  if (facts.units == 0) facts.uncompressed_bytes.reset();
  return facts;
}

StreamInfo Codec::recorded_info(ByteView prefix) const {
  try {
    return stream_info(prefix);
  } catch (const std::exception&) {
    return {};
  }
}

StreamFacts Codec::stream_facts(ByteView) const { return {}; }
StreamInfo Codec::stream_info(ByteView) const { return {}; }

std::uint64_t ChunkCompressor::compress(ByteView history, ByteView input, bool last, Buffer& out) {
  out.clear();  // a hook that appends, or writes nothing, must not leave an earlier chunk's bytes
  const std::uint64_t check = codec_call(codec_name_, [&] { return compress_chunk(history, input, last, out); });
  if (!input.empty() && out.empty()) {
    throw Error(ErrorKind::kInternal,
                fmt::format("the {} compressor wrote nothing for a chunk of {} bytes", codec_name_, input.size()));
  }
  // The engine bounds memory by chunks in flight: a chunk's output must be bounded by its input
  // (one writing 256 times its input took 134 MB at 2 threads for chunks of 64 KiB).
  if (out.size() > kMaxChunkExpansion * input.size() + (std::size_t{1} << 20)) {
    throw Error(ErrorKind::kInternal,
                fmt::format("the {} compressor wrote {} bytes for a chunk of {} bytes (at most {} "
                            "times the chunk and 1 MiB)",
                            codec_name_, out.size(), input.size(), kMaxChunkExpansion));
  }
  return check;
}

void FlushCompressor::compress(ByteView input, bool last, Buffer& out, std::vector<ChunkRecord>& records) {
  const std::size_t before = records.size();
  out.clear();
  codec_call(codec_name_, [&] { compress_piece(input, last, out, records); });
  given_ += input.size();
  if (!input.empty() && out.empty()) {
    throw Error(ErrorKind::kInternal,
                fmt::format("the {} compressor wrote nothing for a flushed piece of {} bytes", codec_name_, input.size()));
  }
  for (std::size_t i = before; i < records.size(); ++i) recorded_ += records[i].input_bytes;
  if (recorded_ > given_ || (last && recorded_ != given_)) {
    throw Error(ErrorKind::kInternal, fmt::format("the {} compressor recorded {} bytes of input for flushed pieces of {}",
                                                  codec_name_, recorded_, given_));
  }
}

void FlushCompressor::end(Buffer& out, std::vector<ChunkRecord>& records) {
  out.clear();
  const std::size_t before = records.size();
  codec_call(codec_name_, [&] { end_pieces(out, records); });
  for (std::size_t i = before; i < records.size(); ++i) recorded_ += records[i].input_bytes;
  if (recorded_ != given_) {
    throw Error(ErrorKind::kInternal, fmt::format("the {} compressor recorded {} bytes of input for flushed pieces of {}",
                                                  codec_name_, recorded_, given_));
  }
}

Cut StreamSplitter::next(ByteView buffered, std::uint64_t offset) {
  return checked(
      unless_guessed_wrong([&] { return codec_call(codec_name_, [&] { return find_cut(buffered, offset); }); }),
      buffered.size(), offset);
}

Cut StreamSplitter::at_end(ByteView buffered, std::uint64_t offset) {
  Cut cut = unless_guessed_wrong([&] { return codec_call(codec_name_, [&] { return cut_at_end(buffered, offset); }); });
  // After a guess, whether the stream is complete is the serial decoder's to say, as in order.
  if (cut.kind == Cut::Kind::kNeedMore && speculated_) cut = cuts::serial();
  return checked(cut, buffered.size(), offset);
}

// After a speculative unit, what the splitter finds wrong may be the guess's mistake (the bytes
// are not what it takes them for): the serial decoder, going on from the last right guess, says
// what is wrong, if anything.
template <typename Find>
Cut StreamSplitter::unless_guessed_wrong(Find find) {
  try {
    return find();
  } catch (const Error& e) {
    if (!speculated_ || e.kind() == ErrorKind::kInternal) throw;
    return cuts::serial();
  }
}

Cut StreamSplitter::cut_at_end(ByteView, std::uint64_t) { return {}; }

Cut StreamSplitter::checked(Cut cut, std::size_t shown, std::uint64_t offset) {
  const auto bad = [&](const std::string& what) {
    return Error(ErrorKind::kInternal, fmt::format("the {} splitter {}", codec_name_, what), {}, offset);
  };
  switch (cut.kind) {
    case Cut::Kind::kUnit:
    case Cut::Kind::kMarker:
      if (cut.bytes == 0) throw bad("cut a piece of 0 bytes");
      break;
    case Cut::Kind::kNeedMore:
    case Cut::Kind::kSerial:
      break;
    default:
      throw bad(fmt::format("answered a cut of no known kind ({})", static_cast<int>(cut.kind)));
  }
  if (cut.kind == Cut::Kind::kMarker && speculated_ && cut.bytes > shown) {
    throw bad(
        fmt::format("cut a marker of {} bytes from the {} it was shown, after a speculative unit", cut.bytes, shown));
  }
  if (cut.kind != Cut::Kind::kUnit) return cut;
  if (cut.bytes > shown) throw bad(fmt::format("cut a unit of {} bytes from the {} it was shown", cut.bytes, shown));
  if (cut.max_output_bytes > kMaxUnitOutputBytes) {
    throw bad(fmt::format("promised a unit of {} bytes, over the {} a unit may hold", cut.max_output_bytes,
                          kMaxUnitOutputBytes));
  }
  // A unit after a guess is one too: where it starts depends on the guess.
  cut.speculative = cut.speculative || speculated_;
  speculated_ = cut.speculative;
  return cut;
}

void UnitDecoder::decode(ByteView unit, const Cut& cut, Buffer& out) {
  out.clear();
  codec_call(codec_name_, [&] { decode_unit(unit, cut, out); });
  if (out.size() > cut.max_output_bytes) {
    throw Error(ErrorKind::kInternal,
                fmt::format("the {} unit decoder made {} bytes of a unit its splitter bounded at {}", codec_name_,
                            out.size(), cut.max_output_bytes));
  }
}

void codecs::copy_to_output(ByteView bytes, StreamDecoder::Output& output) {
  while (!bytes.empty()) {
    const std::span<std::uint8_t> space = output.space();
    const std::size_t n = std::min(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), n);
    output.produced(n);
    bytes = bytes.subspan(n);
  }
}

// The codecs' magic tests, copied under the lock and run without it: a test is a codec's own code,
// which may use the registry itself (a test that registers a codec on first use hung in add(),
// waiting for the lock its own detect() held).
std::vector<CodecRegistry::MagicTest> CodecRegistry::magic_tests() const {
  std::shared_lock lock(state_->mutex);
  std::vector<MagicTest> tests;
  tests.reserve(state_->entries.size());
  for (const auto& entry : state_->entries)
    tests.push_back({entry.info.name, entry.info.matches_magic, entry.info.magic_bytes});
  return tests;
}

std::optional<CodecInfo> CodecRegistry::detect(ByteView prefix) const {
  for (const auto& test : magic_tests())
    if (test.matches_magic && codec_call(test.name, [&] { return test.matches_magic(prefix); })) return find(test.name);
  return std::nullopt;
}

bool CodecRegistry::detection_settled(ByteView prefix) const {
  for (const auto& test : magic_tests()) {
    if (test.matches_magic && codec_call(test.name, [&] { return test.matches_magic(prefix); })) return true;
    if (test.matches_magic && prefix.size() < test.magic_bytes) return false;  // may match yet
  }
  return false;
}

namespace {

// Unix compress's names (x.Z, x.tar.Z, x.taZ), in the case that tells them from gzip's .z and
// .taz: no registered codec's, whatever the case-blind lookups below would say.
bool compress_name(const std::string& path) { return path.ends_with(".Z") || path.ends_with(".taZ"); }

// The codec's suffixes: the one it writes first.
std::vector<std::string> extensions_of(const CodecInfo& info) {
  std::vector<std::string> all{info.extension};
  all.insert(all.end(), info.other_extensions.begin(), info.other_extensions.end());
  return all;
}

}  // namespace

std::optional<CodecInfo> CodecRegistry::by_extension(const std::string& path) const {
  if (compress_name(path)) return std::nullopt;
  std::shared_lock lock(state_->mutex);
  for (const auto& entry : state_->entries) {
    for (const auto& ext : extensions_of(entry.info)) {
      if (has_suffix(path, ext)) return entry.info;
    }
  }
  return std::nullopt;
}

std::optional<CodecInfo> CodecRegistry::by_tar_name(const std::string& path) const {
  if (compress_name(path)) return std::nullopt;
  std::shared_lock lock(state_->mutex);
  for (const auto& entry : state_->entries) {
    for (const auto& ext : extensions_of(entry.info)) {
      if (has_suffix(path, ".tar" + ext)) return entry.info;
    }
    for (const auto& suffix : entry.info.tar_suffixes) {
      if (has_suffix(path, suffix)) return entry.info;
    }
  }
  return std::nullopt;
}

std::optional<std::string> CodecRegistry::decompressed_name(const std::string& path) const {
  if (compress_name(path)) return std::nullopt;
  std::shared_lock lock(state_->mutex);
  for (const auto& entry : state_->entries) {
    for (const auto& suffix : entry.info.tar_suffixes) {
      if (has_suffix(path, suffix)) return path.substr(0, path.size() - suffix.size()) + ".tar";
    }
    for (const auto& ext : extensions_of(entry.info)) {
      if (has_suffix(path, ext)) return path.substr(0, path.size() - ext.size());
    }
  }
  return std::nullopt;
}

std::vector<std::string> CodecRegistry::names() const {
  std::shared_lock lock(state_->mutex);
  std::vector<std::string> names;
  for (const auto& entry : state_->entries) names.push_back(entry.info.name);
  return names;
}

namespace {
std::vector<std::string> knob_names(const CodecInfo& info) {
  std::vector<std::string> names;
  for (const auto& knob : info.knobs) names.push_back(knob.name);
  return names;
}
}  // namespace

CodecOptions resolve_options(const CodecInfo& info, const CodecOptions& options) {
  CodecOptions resolved = options;
  if (resolved.level == 0) resolved.level = info.default_level;
  if (resolved.level < info.min_level || resolved.level > info.max_level) {
    throw Error(ErrorKind::kUsage, fmt::format("{} level must be between {} and {}, not {}", info.name,
                                               info.min_level, info.max_level, resolved.level));
  }
  if (!resolved.backend.empty() &&
      std::find(info.backends.begin(), info.backends.end(), resolved.backend) == info.backends.end()) {
    throw Error(ErrorKind::kUsage,
                info.backends.empty()
                    ? fmt::format("{} has no backends to choose from (asked for '{}')", info.name, resolved.backend)
                    : fmt::format("unknown {} backend '{}' (known: {})", info.name, resolved.backend,
                                  fmt::join(info.backends, ", ")));
  }
  for (const auto& setting : resolved.knobs) {
    const std::string& name = setting.first;
    const std::string& value = setting.second;
    const auto knob =
        std::find_if(info.knobs.begin(), info.knobs.end(), [&](const CodecKnob& k) { return k.name == name; });
    if (knob == info.knobs.end()) {
      throw Error(ErrorKind::kUsage, info.knobs.empty() ? fmt::format("{} has no setting '{}'", info.name, name)
                                                        : fmt::format("{} has no setting '{}' (known: {})", info.name,
                                                                      name, fmt::join(knob_names(info), ", ")));
    }
    if (std::find(knob->values.begin(), knob->values.end(), value) == knob->values.end()) {
      throw Error(ErrorKind::kUsage, fmt::format("{} {} must be one of {}, not '{}'", info.name, name,
                                                 fmt::join(knob->values, ", "), value));
    }
  }
  for (const auto& knob : info.knobs) resolved.knobs.try_emplace(knob.name, knob.default_value);
  if (resolved.chunk_bytes == 0) resolved.chunk_bytes = info.default_chunk_bytes;
  if (resolved.chunk_bytes < kMinChunkBytes || resolved.chunk_bytes > kMaxChunkBytes) {
    throw Error(ErrorKind::kUsage,
                fmt::format("chunk size must be between 1 KiB and 1 GiB, not {} bytes", resolved.chunk_bytes));
  }
  return resolved;
}

bool detection_may_change(ByteView prefix) {
  const auto magic = codecs::first_frame_magic(prefix);
  return magic && (*magic & 0xFFFFFFF0u) == codecs::kOnlySkippableFrames;
}

std::string foreign_format(ByteView head) {
  const auto starts = [&](std::initializer_list<std::uint8_t> magic) {
    return head.size() >= magic.size() && std::equal(magic.begin(), magic.end(), head.begin());
  };
  if (starts({0xfd, '7', 'z', 'X', 'Z', 0x00})) return "an xz stream";
  if (starts({'B', 'Z', 'h'}) && head.size() > 3 && head[3] >= '1' && head[3] <= '9') return "a bzip2 stream";
  if (starts({'P', 'K', 3, 4}) || starts({'P', 'K', 5, 6})) return "a zip archive";
  if (starts({0x1f, 0x9d})) return "a compress (.Z) stream";
  if (starts({'L', 'Z', 'I', 'P'})) return "an lzip stream";
  if (starts({'7', 'z', 0xbc, 0xaf, 0x27, 0x1c})) return "a 7z archive";
  if (starts({0x5d, 0x00, 0x00})) return "an lzma stream";
  return {};
}

// Whether `path` ends with `suffix` and has a name before it (not a directory's "/"). In any
// case, as gzip takes them: files from systems that upper-case names (LOGS.GZ, DATA.TGZ) are
// named the same.
bool has_suffix(const std::string& path, const std::string& suffix) {
  if (suffix.empty() || path.size() <= suffix.size() || path[path.size() - suffix.size() - 1] == '/') return false;
  const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  return std::equal(suffix.begin(), suffix.end(), path.end() - static_cast<std::ptrdiff_t>(suffix.size()),
                    [&](char a, char b) { return lower(a) == lower(b); });
}

std::string foreign_format_by_name(const std::string& path) {
  if (compress_name(path)) return "a compress (.Z) stream";
  // GNU tar's suffixes for the compressors it runs (--auto-compress), and other archivers'.
  static constexpr std::pair<std::string_view, std::string_view> kOtherFormats[] = {
      {".xz", "an xz stream"},     {".txz", "an xz stream"},   {".bz2", "a bzip2 stream"}, {".tbz", "a bzip2 stream"},
      {".tbz2", "a bzip2 stream"}, {".tz2", "a bzip2 stream"}, {".lz", "an lzip stream"},  {".lzma", "an lzma stream"},
      {".tlz", "an lzma stream"},  {".lzo", "an lzop stream"}, {".br", "a brotli stream"}, {".zip", "a zip archive"},
      {".jar", "a zip archive"},   {".7z", "a 7z archive"},    {".rar", "a RAR archive"}};
  for (const auto& [suffix, format] : kOtherFormats) {
    if (has_suffix(path, std::string(suffix))) return std::string(format);
  }
  return {};
}

bool has_compressed_suffix(const std::string& path) {
  if (!foreign_format_by_name(path).empty()) return true;
  const CodecRegistry& registry = CodecRegistry::global();
  return registry.by_extension(path).has_value() || registry.by_tar_name(path).has_value();
}

}  // namespace sluice
