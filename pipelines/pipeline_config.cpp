// Pipeline files: TOML (parsed with toml++) into a PipelineSpec, with every key checked and every
// message pointing at the file, line and column.
//
//   threads = 2
//   memory_budget = "256M"
//   [input]
//   paths = ["logs/"]
//   [[stage]]
//   kind = "decompress"
//   [[stage]]
//   kind = "compress"
//   codec = "zstd"
//   [output]
//   directory = "out/"
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <set>

#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/pipeline.h"
#include "sluice/tar.h"

namespace sluice {
namespace {

// Values from --set are parsed with the source name "--set"; they have no line in the file.
std::string where(const std::string& file, const toml::source_region& source) {
  if (source.begin.line == 0 || (source.path && *source.path == "--set")) return fmt::format("{} (--set)", file);
  return fmt::format("{}:{}:{}", file, source.begin.line, source.begin.column);
}

[[noreturn]] void fail(const std::string& file, const toml::source_region& source, const std::string& what) {
  throw Error(ErrorKind::kUsage, fmt::format("{}: {}", where(file, source), what));
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

// Reads the keys of one table, each at most once, and rejects any key not read.
class Keys {
 public:
  Keys(const toml::table& table, std::string file, std::string context)
      : table_(table), file_(std::move(file)), context_(std::move(context)) {}

  const toml::node* find(const std::string& key) {
    known_.push_back(key);
    return table_.get(key);
  }

  std::optional<std::string> string(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_string()) wrong_type(key, *node, "a string");
    return node->as_string()->get();
  }
  std::optional<bool> boolean(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_boolean()) wrong_type(key, *node, "true or false");
    return node->as_boolean()->get();
  }
  std::optional<std::int64_t> integer(const std::string& key, std::int64_t min, std::int64_t max) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_integer()) wrong_type(key, *node, "an integer");
    const std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      fail(file_, node->source(), fmt::format("{}'{}' must be between {} and {}, not {}", prefix(), key, min, max, value));
    }
    return value;
  }
  // A byte count: an integer, or a string such as "4M".
  std::optional<std::uint64_t> bytes(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (node->is_integer() && node->as_integer()->get() > 0) return static_cast<std::uint64_t>(node->as_integer()->get());
    if (node->is_string()) {
      try {
        return parse_byte_count(node->as_string()->get());
      } catch (const Error& e) {
        fail(file_, node->source(), fmt::format("{}'{}': {}", prefix(), key, e.detail()));
      }
    }
    wrong_type(key, *node, "a size such as \"4M\" or a positive integer");
  }
  std::vector<std::string> strings(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return {};
    if (node->is_string()) return {node->as_string()->get()};
    if (!node->is_array()) wrong_type(key, *node, "an array of strings");
    std::vector<std::string> values;
    for (const toml::node& item : *node->as_array()) {
      if (!item.is_string()) wrong_type(key, item, "an array of strings");
      values.push_back(item.as_string()->get());
    }
    return values;
  }
  // One of `choices`.
  std::optional<std::string> choice(const std::string& key, const std::vector<std::string>& choices) {
    const auto value = string(key);
    if (value && std::find(choices.begin(), choices.end(), *value) == choices.end()) {
      fail(file_, table_.get(key)->source(),
           fmt::format("{}'{}' must be one of {}, not '{}'", prefix(), key, fmt::join(choices, ", "), *value));
    }
    return value;
  }

  const toml::source_region& source_of(const std::string& key) const { return table_.get(key)->source(); }

  // Rejects keys that nothing read.
  void finish() {
    for (const auto& [key, node] : table_) {
      if (std::find(known_.begin(), known_.end(), std::string(key.str())) == known_.end()) {
        fail(file_, key.source().begin.line ? key.source() : node.source(),
             fmt::format("{}unknown key '{}' (known here: {})", prefix(), key.str(), fmt::join(known_, ", ")));
      }
    }
  }

 private:
  std::string prefix() const { return context_.empty() ? "" : context_ + ": "; }
  [[noreturn]] void wrong_type(const std::string& key, const toml::node& node, const char* wanted) {
    fail(file_, node.source(), fmt::format("{}'{}' must be {}, not {}", prefix(), key, wanted, type_name(node)));
  }

  const toml::table& table_;
  std::string file_;
  std::string context_;
  std::vector<std::string> known_;
};

StageKind stage_kind(const std::string& name) {
  if (name == "decompress") return StageKind::kDecompress;
  if (name == "compress") return StageKind::kCompress;
  if (name == "tar") return StageKind::kTar;
  if (name == "untar" || name == "unpack") return StageKind::kUntar;  // tar or zip: the same stage
  return StageKind::kChecksum;
}

// Every codec's settings, as the codec describes them (CodecInfo::backends and knobs): the keys
// <codec>_backend and <codec>_<knob>, each refused unless the stage's codec is that codec.
void read_codec_settings(Keys& keys, const std::string& file, std::size_t number, StageSpec& stage) {
  const auto check_codec = [&](const std::string& key, const std::string& codec) {
    if (stage.codec != codec) {
      fail(file, keys.source_of(key), fmt::format("stage {}: '{}' needs codec = \"{}\"", number, key, codec));
    }
  };
  for (const std::string& name : CodecRegistry::global().names()) {
    const CodecInfo info = *CodecRegistry::global().find(name);
    if (!info.backends.empty()) {
      const std::string key = name + "_backend";
      if (const auto backend = keys.choice(key, info.backends)) {
        check_codec(key, name);
        stage.codec_options.backend = *backend;
      }
    }
    for (const CodecKnob& knob : info.knobs) {
      const std::string key = name + "_" + knob.name;
      if (const auto value = keys.choice(key, knob.values)) {
        check_codec(key, name);
        stage.codec_options.knobs[knob.name] = *value;
      }
    }
  }
}

StageSpec parse_stage(const toml::table& table, const std::string& file, std::size_t number) {
  Keys keys(table, file, fmt::format("stage {}", number));
  StageSpec stage;
  stage.line = static_cast<int>(table.source().begin.line);
  const auto kind = keys.choice("kind", {"decompress", "compress", "tar", "untar", "unpack", "checksum"});
  if (!kind) fail(file, table.source(), fmt::format("stage {}: 'kind' is missing", number));
  stage.kind = stage_kind(*kind);
  try {
    switch (stage.kind) {
      case StageKind::kDecompress:
        if (const auto format = keys.choice("format", CodecRegistry::global().names())) stage.format = *format;
        break;
      case StageKind::kCompress: {
        if (const auto codec = keys.choice("codec", CodecRegistry::global().names())) stage.codec = *codec;
        const CodecInfo info = *CodecRegistry::global().find(stage.codec);
        if (const auto level = keys.integer("level", info.min_level, info.max_level)) {
          stage.codec_options.level = static_cast<int>(*level);
        }
        if (const auto chunk = keys.bytes("chunk_size")) stage.codec_options.chunk_bytes = *chunk;
        read_codec_settings(keys, file, number, stage);
        (void)CodecRegistry::global().create(stage.codec, stage.codec_options);  // checks the chunk size
        break;
      }
      case StageKind::kTar:
        if (const toml::node* mtime = keys.find("mtime")) {  // seconds, or a date as for --mtime
          if (mtime->is_integer()) stage.tar.mtime_seconds = mtime->as_integer()->get();
          else if (mtime->is_string()) stage.tar.mtime_seconds = parse_tar_mtime(mtime->as_string()->get());
          else fail(file, mtime->source(), fmt::format("stage {}: 'mtime' must be seconds or a date string, not {}", number, type_name(*mtime)));
        }
        if (const auto owner = keys.string("owner")) stage.tar.owner = parse_tar_owner(*owner);
        if (const auto group = keys.string("group")) stage.tar.group = parse_tar_owner(*group);
        if (const auto numeric = keys.boolean("numeric_owner")) stage.tar.numeric_owner = *numeric;
        stage.tar.exclude = keys.strings("exclude");  // patterns, as for sluice tar --exclude
        break;
      case StageKind::kUntar:
        if (const auto strict = keys.boolean("strict")) stage.strict = *strict;
        break;
      case StageKind::kChecksum:
        if (const auto algorithm = keys.choice("algorithm", {"sha256", "xxh64"})) stage.algorithm = *algorithm;
        if (const auto manifest = keys.string("manifest")) stage.manifest = *manifest;
        break;
    }
  } catch (const Error& e) {
    if (e.detail().find(file) == 0) throw;
    fail(file, table.source(), fmt::format("stage {}: {}", number, e.detail()));
  }
  keys.finish();
  return stage;
}

// "stage.2.level=19" -> sets table["stage"][1]["level"] = 19 (values are TOML; a bare word is a string).
void apply_override(toml::table& root, const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw Error(ErrorKind::kUsage, fmt::format("--set '{}': use KEY=VALUE", assignment));
  }
  const std::string key = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text, std::string_view("--set"));
  } catch (const toml::parse_error&) {
    parsed = toml::table{};
    parsed.insert("v", text);  // a bare word: a string
  }
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  toml::table* table = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* next = table->get(parts[i]);
    if (next && next->is_array()) {
      toml::array& array = *next->as_array();
      std::size_t index = 0;
      if (i + 2 >= parts.size() || parts[i + 1].empty() ||
          parts[i + 1].find_first_not_of("0123456789") != std::string::npos ||
          (index = std::stoul(parts[i + 1])) == 0 || index > array.size() || !array.get(index - 1)->is_table()) {
        throw Error(ErrorKind::kUsage, fmt::format("--set '{}': '{}' has {} entries (numbered from 1)", assignment,
                                                   parts[i], array.size()));
      }
      table = array.get(index - 1)->as_table();
      ++i;
      continue;
    }
    if (!next) next = table->insert(parts[i], toml::table{}).first->second.as_table();
    if (!next->is_table()) throw Error(ErrorKind::kUsage, fmt::format("--set '{}': '{}' is not a table", assignment, parts[i]));
    table = next->as_table();
  }
  table->insert_or_assign(parts.back(), std::move(*parsed.get("v")));
}

}  // namespace

PipelineSpec parse_pipeline_text(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    fail(name, e.source(), std::string(e.description()));
  }
  for (const auto& assignment : overrides) apply_override(root, assignment);

  PipelineSpec spec;
  Keys top(root, name, "");
  if (const auto threads = top.integer("threads", 0, 1024)) spec.threads = static_cast<int>(*threads);
  if (const auto budget = top.bytes("memory_budget")) spec.memory_budget_bytes = *budget;

  const toml::node* input = top.find("input");
  if (!input) fail(name, root.source(), "the [input] table is missing");
  if (!input->is_table()) fail(name, input->source(), fmt::format("'input' must be a table, not {}", type_name(*input)));
  {
    Keys keys(*input->as_table(), name, "input");
    spec.inputs = keys.strings("paths");
    for (const auto& path : keys.strings("path")) spec.inputs.push_back(path);
    keys.finish();
    if (spec.inputs.empty()) fail(name, input->source(), "input: 'paths' is missing or empty");
  }

  const toml::node* stages = top.find("stage");
  if (!stages) fail(name, root.source(), "no [[stage]] given");
  if (!stages->is_array()) fail(name, stages->source(), "'stage' must be an array of tables ([[stage]])");
  std::size_t number = 0;
  for (const toml::node& node : *stages->as_array()) {
    ++number;
    if (!node.is_table()) fail(name, node.source(), fmt::format("stage {} must be a table", number));
    spec.stages.push_back(parse_stage(*node.as_table(), name, number));
  }

  const toml::node* output = top.find("output");
  if (!output) fail(name, root.source(), "the [output] table is missing");
  if (!output->is_table()) fail(name, output->source(), fmt::format("'output' must be a table, not {}", type_name(*output)));
  {
    Keys keys(*output->as_table(), name, "output");
    const auto directory = keys.string("directory");
    const auto file = keys.string("file");
    const auto to_stdout = keys.boolean("stdout");
    if (const auto overwrite = keys.boolean("overwrite")) spec.overwrite = *overwrite;
    keys.finish();
    const int given = int(directory.has_value()) + int(file.has_value()) + int(to_stdout.value_or(false));
    if (given != 1) fail(name, output->source(), "output: give exactly one of 'directory', 'file' or 'stdout = true'");
    if (directory) {
      spec.output = *directory;
      spec.output_is_directory = true;
    } else if (file) {
      spec.output = *file;
    } else {
      spec.output = "-";
    }
  }
  top.finish();
  try {
    validate_pipeline(spec);
  } catch (const Error& e) {
    throw Error(ErrorKind::kUsage, fmt::format("{}: {}", name, e.detail()));
  }
  return spec;
}

PipelineSpec parse_pipeline_file(const std::string& path, const std::vector<std::string>& overrides) {
  FdSource source(path);
  std::string text;
  char buffer[65536];
  for (;;) {
    const std::size_t n = source.read(reinterpret_cast<std::uint8_t*>(buffer), sizeof buffer);
    if (n == 0) break;
    text.append(buffer, n);
  }
  return parse_pipeline_text(text, path, overrides);
}

}  // namespace sluice
