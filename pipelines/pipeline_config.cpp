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
#include <string_view>
#include <tuple>

#include "pipelines/pipeline_checks.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/pipeline.h"
#include "sluice/tar.h"

namespace sluice {
namespace {

// Values set by an override are parsed with the source name "override KEY=VALUE"; they have no
// line in the file.
constexpr std::string_view kOverride = "override ";

std::string where(const std::string& file, const toml::source_region& source) {
  if (source.path && source.path->starts_with(kOverride)) return fmt::format("{} ({})", file, *source.path);
  if (source.begin.line == 0) return fmt::format("{} (override)", file);
  return fmt::format("{}:{}:{}", file, source.begin.line, source.begin.column);
}

// Every mistake found in a pipeline file, each with its place; thrown together at the end, in
// the order of the file.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  void add(const toml::source_region& source, const std::string& what) {
    const bool in_file = source.begin.line > 0 && !(source.path && source.path->starts_with(kOverride));
    entries_.push_back({in_file ? source.begin.line : 0, in_file ? source.begin.column : 0,
                        fmt::format("{}: {}", where(file_, source), what)});
  }
  // A mistake that is no place in the file (an override that names nothing).
  void add_unplaced(const std::string& what) { entries_.push_back({0, 0, fmt::format("{}: {}", file_, what)}); }
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }

  // Throws one Error (kUsage) with a line per mistake, in the order of the file (overrides first).
  void throw_if_any() {
    if (entries_.empty()) return;
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    std::string text;
    for (const auto& entry : entries_) text += (text.empty() ? "" : "\n") + entry.text;
    throw Error(ErrorKind::kUsage, text);
  }

 private:
  struct Entry {
    std::uint32_t line;
    std::uint32_t column;
    std::string text;
  };
  std::string file_;
  std::vector<Entry> entries_;
};

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

// The edit distance between two names (insertions, deletions, substitutions and swaps of two
// neighbours each count one), for "did you mean".
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// Reads the keys of one table, each at most once; finish() reports every key nothing read. A
// mistake is recorded in the Diagnostics and the value read as absent, so that parsing goes on
// and every mistake of the file is reported at once.
class Keys {
 public:
  // `path`: the table's name in the file ("input", "stage"; "" for the top), for messages about
  // tables inside it; `context`: what messages start with ("stage 2").
  Keys(const toml::table& table, Diagnostics& diagnostics, std::string path, std::string context)
      : table_(table), diagnostics_(diagnostics), path_(std::move(path)), context_(std::move(context)) {}

  // Marks `key` as known (shown as `shown` in the list of known keys) and returns its node.
  const toml::node* find(const std::string& key, const std::string& shown = {}) {
    known_.push_back({key, shown.empty() ? key : shown});
    return table_.get(key);
  }
  bool has(const std::string& key) const { return table_.get(key) != nullptr; }

  std::optional<std::string> string(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_string()) return wrong_type(key, *node, "a string");
    if (has_nul(*node)) return fail(*node, fmt::format("'{}' holds a NUL byte", key));
    return node->as_string()->get();
  }
  std::optional<bool> boolean(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_boolean()) return wrong_type(key, *node, "true or false");
    return node->as_boolean()->get();
  }
  std::optional<std::int64_t> integer(const std::string& key, std::int64_t min, std::int64_t max) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (!node->is_integer()) return wrong_type(key, *node, "an integer");
    const std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      return fail(*node, fmt::format("'{}' must be between {} and {}, not {}", key, min, max, value));
    }
    return value;
  }
  // A byte count: an integer, or a string such as "4M".
  std::optional<std::uint64_t> bytes(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    if (node->is_integer() && node->as_integer()->get() > 0) return static_cast<std::uint64_t>(node->as_integer()->get());
    if (node->is_integer()) {  // said as what it is ("not an integer" was said of 0)
      return fail(*node, fmt::format("'{}' must be a size such as \"4M\" or a positive integer, not {}", key,
                                     node->as_integer()->get()));
    }
    if (node->is_string()) {
      try {
        return parse_byte_count(node->as_string()->get());
      } catch (const Error& e) {
        return fail(*node, fmt::format("'{}': {}", key, e.detail()));
      }
    }
    return wrong_type(key, *node, "a size such as \"4M\" or a positive integer");
  }
  // Absent, a string, or an array of strings; nullopt after a mistake.
  std::optional<std::vector<std::string>> strings(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return std::vector<std::string>{};
    if (node->is_string()) {
      if (has_nul(*node)) return fail(*node, fmt::format("'{}' holds a NUL byte", key));
      return std::vector<std::string>{node->as_string()->get()};
    }
    if (!node->is_array()) return wrong_type(key, *node, "an array of strings");
    std::vector<std::string> values;
    for (const toml::node& item : *node->as_array()) {
      if (!item.is_string()) return wrong_type(key, item, "an array of strings");
      if (has_nul(item)) return fail(item, fmt::format("'{}' holds a NUL byte", key));
      values.push_back(item.as_string()->get());
    }
    return values;
  }
  // TOML's "\u0000" makes a string the system would end there: a path "in/*\u0000.x" globbed
  // in/*, a directory "out\u0000/../x" made out. No setting takes one.
  static bool has_nul(const toml::node& node) {
    return node.is_string() && node.as_string()->get().find('\0') != std::string::npos;
  }
  // One of `choices`.
  std::optional<std::string> choice(const std::string& key, const std::vector<std::string>& choices) {
    const auto value = string(key);
    if (value && std::find(choices.begin(), choices.end(), *value) == choices.end()) {
      return fail(*table_.get(key),
                  fmt::format("'{}' must be one of {}, not '{}'", key, fmt::join(choices, ", "), *value));
    }
    return value;
  }

  // Records a mistake about `node` (or the table itself); returns nullopt for the caller to return.
  std::nullopt_t fail(const toml::node& node, const std::string& what) {
    diagnostics_.add(node.source(), prefix() + what);
    return std::nullopt;
  }
  std::nullopt_t fail_at(const std::string& key, const std::string& what) {
    return fail(table_.get(key) ? *table_.get(key) : static_cast<const toml::node&>(table_), what);
  }

  // Reports every key nothing read, with the nearest known name where one is close. Returns the
  // known names suggested.
  std::vector<std::string> finish() {
    std::vector<std::string> suggested;
    for (const auto& [key, node] : table_) {
      const std::string name(key.str());
      const auto is_known = [&](const Known& known) { return known.key == name; };
      if (std::find_if(known_.begin(), known_.end(), is_known) != known_.end()) continue;
      const Known* nearest = nullptr;
      std::size_t best = 0;
      for (const Known& known : known_) {
        const std::size_t distance = edit_distance(name, known.key);
        if (distance <= (known.key.size() >= 5 ? 2u : 1u) && (!nearest || distance < best)) {
          nearest = &known;
          best = distance;
        }
      }
      const std::string full = path_.empty() ? name : path_ + "." + name;
      const std::string what = node.is_array_of_tables() ? fmt::format("unknown table [[{}]]", full)
                               : node.is_table()         ? fmt::format("unknown table [{}]", full)
                                                         : fmt::format("unknown key '{}'", name);
      std::vector<std::string> shown;
      for (const Known& known : known_) shown.push_back(known.shown);
      const std::string hint = !nearest                         ? ""
                               : nearest->shown == nearest->key ? fmt::format("did you mean '{}'? ", nearest->key)
                                                                : fmt::format("did you mean {}? ", nearest->shown);
      if (nearest) suggested.push_back(nearest->key);
      diagnostics_.add(key.source().begin.line ? key.source() : node.source(),
                       prefix() + fmt::format("{} ({}known here: {})", what, hint, fmt::join(shown, ", ")));
    }
    return suggested;
  }

 private:
  struct Known {
    std::string key;
    std::string shown;  // 'level', [output], [[stage]]
  };
  std::string prefix() const { return context_.empty() ? "" : context_ + ": "; }
  std::nullopt_t wrong_type(const std::string& key, const toml::node& node, const char* wanted) {
    return fail(node, fmt::format("'{}' must be {}, not {}", key, wanted, type_name(node)));
  }

  const toml::table& table_;
  Diagnostics& diagnostics_;
  std::string path_;
  std::string context_;
  std::vector<Known> known_;
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
// `codec_known`: whether stage.codec is a codec (when the 'codec' key was wrong, it is not checked).
void read_codec_settings(Keys& keys, bool codec_known, StageSpec& stage) {
  const auto right_codec = [&](const std::string& key, const std::string& codec) {
    if (!codec_known || stage.codec == codec) return true;
    keys.fail_at(key, fmt::format("'{}' needs codec = \"{}\"", key, codec));
    return false;
  };
  for (const std::string& name : CodecRegistry::global().names()) {
    const CodecInfo info = *CodecRegistry::global().find(name);
    if (!info.backends.empty()) {
      const std::string key = name + "_backend";
      if (const auto backend = keys.choice(key, info.backends); backend && right_codec(key, name)) {
        stage.codec_options.backend = *backend;
      }
    }
    for (const CodecKnob& knob : info.knobs) {
      const std::string key = name + "_" + knob.name;
      if (const auto value = keys.choice(key, knob.values); value && right_codec(key, name)) {
        stage.codec_options.knobs[knob.name] = *value;
      }
    }
  }
}

// One [[stage]]; nullopt when its kind is missing or unknown (its other keys then go unchecked).
// A decompress or untar stage's max_output: a size of at least 1 byte (0 would be no limit).
void read_max_output(Keys& keys, StageSpec& stage) {
  const auto limit = keys.bytes("max_output");
  if (!limit) return;
  if (*limit == 0) {
    keys.fail_at("max_output", "'max_output' must be at least 1 byte (leave it out for no limit)");
    return;
  }
  stage.max_output_bytes = *limit;
}

std::optional<StageSpec> parse_stage(const toml::table& table, Diagnostics& diagnostics, std::size_t number) {
  Keys keys(table, diagnostics, "stage", fmt::format("stage {}", number));
  const std::size_t mistakes = diagnostics.size();
  StageSpec stage;
  stage.line = static_cast<int>(table.source().begin.line);
  const auto kind = keys.choice("kind", {"decompress", "compress", "tar", "untar", "unpack", "checksum"});
  if (!kind) {
    if (!keys.has("kind")) keys.fail(table, "'kind' is missing");
    return std::nullopt;
  }
  stage.kind = stage_kind(*kind);
  // A library call that refuses a value: the mistake is put at `key` (or the stage).
  const auto checked = [&](const std::string& key, const auto& call) {
    try {
      call();
    } catch (const Error& e) {
      keys.fail_at(key, e.detail());
    }
  };
  switch (stage.kind) {
    case StageKind::kDecompress:
      if (const auto format = keys.choice("format", CodecRegistry::global().names())) stage.format = *format;
      read_max_output(keys, stage);
      break;
    case StageKind::kCompress: {
      const auto codec = keys.choice("codec", CodecRegistry::global().names());
      const bool codec_known = codec || !keys.has("codec");
      if (codec) stage.codec = *codec;
      if (codec_known) {
        const CodecInfo info = *CodecRegistry::global().find(stage.codec);
        if (const auto level = keys.integer("level", info.min_level, info.max_level)) {
          stage.codec_options.level = static_cast<int>(*level);
        }
      } else {
        keys.find("level");  // its range depends on the codec
      }
      if (const auto chunk = keys.bytes("chunk_size")) stage.codec_options.chunk_bytes = *chunk;
      read_codec_settings(keys, codec_known, stage);
      if (diagnostics.size() == mistakes) {  // what the codec says of the whole (the chunk size)
        checked(keys.has("chunk_size") ? "chunk_size" : "",
                [&] { (void)CodecRegistry::global().create(stage.codec, stage.codec_options); });
      }
      break;
    }
    case StageKind::kTar:
      if (const toml::node* mtime = keys.find("mtime")) {  // seconds, or a date as for --mtime
        if (mtime->is_integer()) {
          stage.tar.mtime_seconds = mtime->as_integer()->get();
        } else if (mtime->is_string()) {
          checked("mtime", [&] { stage.tar.mtime_seconds = parse_tar_mtime(mtime->as_string()->get()); });
        } else {
          keys.fail(*mtime, fmt::format("'mtime' must be seconds or a date string, not {}", type_name(*mtime)));
        }
      }
      // A name this system does not know is the file's mistake, with its line, in a dry run too
      // (it passed --dry-run and failed the run without one), as sluice tar --owner resolves it.
      if (const auto owner = keys.string("owner"))
        checked("owner", [&] { stage.tar.owner = resolve_tar_user(parse_tar_owner(*owner)); });
      if (const auto group = keys.string("group"))
        checked("group", [&] { stage.tar.group = resolve_tar_group(parse_tar_owner(*group)); });
      if (const auto numeric = keys.boolean("numeric_owner")) stage.tar.numeric_owner = *numeric;
      if (auto exclude = keys.strings("exclude")) stage.tar.exclude = std::move(*exclude);  // as sluice tar --exclude
      break;
    case StageKind::kUntar:
      if (const auto strict = keys.boolean("strict")) stage.strict = *strict;
      read_max_output(keys, stage);
      break;
    case StageKind::kChecksum:
      if (const auto algorithm = keys.choice("algorithm", {"sha256", "xxh64"})) stage.algorithm = *algorithm;
      if (const auto manifest = keys.string("manifest")) stage.manifest = *manifest;
      break;
  }
  keys.finish();
  return stage;
}

// A TOML basic string holding `text`.
std::string toml_quoted(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      quoted += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

// "stage.2.level=19" -> sets table["stage"][1]["level"] = 19 (values are TOML; a bare word is a
// string). The value's source is named "override stage.2.level=19", for messages.
void apply_override(toml::table& root, const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw Error(ErrorKind::kUsage, fmt::format("override '{}': use KEY=VALUE", assignment));
  }
  const std::string key = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  const std::string source = std::string(kOverride) + assignment;
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text, std::string_view(source));
  } catch (const toml::parse_error&) {
    parsed = toml::parse("v = " + toml_quoted(text), std::string_view(source));  // a bare word: a string
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
        throw Error(ErrorKind::kUsage, fmt::format("override '{}': '{}' has {} entries (numbered from 1)", assignment,
                                                   parts[i], array.size()));
      }
      table = array.get(index - 1)->as_table();
      ++i;
      continue;
    }
    if (!next) next = table->insert(parts[i], toml::table{}).first->second.as_table();
    if (!next->is_table())
      throw Error(ErrorKind::kUsage, fmt::format("override '{}': '{}' is not a table", assignment, parts[i]));
    table = next->as_table();
  }
  table->insert_or_assign(parts.back(), std::move(*parsed.get("v")));
}

// Where a table of the file is, for a problem with it: the table itself, or the whole file when
// it is missing.
const toml::source_region& place_of(const toml::node* node, const toml::table& root) {
  return node ? node->source() : root.source();
}

}  // namespace

PipelineSpec parse_pipeline_text(const std::string& text, const std::string& name, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    // toml++ stops at the first syntax error: nothing after it can be checked.
    Diagnostics syntax(name);
    syntax.add(e.source(), std::string(e.description()));
    syntax.throw_if_any();
  }
  Diagnostics diagnostics(name);
  for (const auto& assignment : overrides) {
    try {
      apply_override(root, assignment);
    } catch (const Error& e) {
      diagnostics.add_unplaced(e.detail());
    }
  }

  PipelineSpec spec;
  bool complete = true;  // every part there and of the right type, so the shape can be checked
  Keys top(root, diagnostics, "", "");
  if (const auto threads = top.integer("threads", 0, 1024)) spec.threads = static_cast<int>(*threads);
  if (const auto budget = top.bytes("memory_budget")) spec.memory_budget_bytes = *budget;

  const toml::node* input = top.find("input", "[input]");
  if (input && !input->is_table()) {
    top.fail(*input, fmt::format("'input' must be a table, not {}", type_name(*input)));
    complete = false;
  } else if (input) {
    Keys keys(*input->as_table(), diagnostics, "input", "input");
    const auto paths = keys.strings("paths");
    const auto path = keys.strings("path");
    if (paths) spec.inputs = *paths;
    if (path) spec.inputs.insert(spec.inputs.end(), path->begin(), path->end());
    keys.finish();
    if (paths && path && spec.inputs.empty()) keys.fail(*input, "'paths' is missing or empty");
    if (spec.inputs.empty()) complete = false;
  }

  const toml::node* stages = top.find("stage", "[[stage]]");
  std::vector<const toml::node*> stage_nodes;
  if (stages && !stages->is_array()) {
    top.fail(*stages, "'stage' must be an array of tables ([[stage]])");
    complete = false;
  } else if (stages) {
    std::size_t number = 0;
    for (const toml::node& node : *stages->as_array()) {
      ++number;
      if (!node.is_table()) {
        top.fail(node, fmt::format("stage {} must be a table", number));
        complete = false;
        continue;
      }
      auto stage = parse_stage(*node.as_table(), diagnostics, number);
      if (!stage) {
        complete = false;
        continue;
      }
      spec.stages.push_back(std::move(*stage));
      stage_nodes.push_back(&node);
    }
  }

  const toml::node* output = top.find("output", "[output]");
  if (output && !output->is_table()) {
    top.fail(*output, fmt::format("'output' must be a table, not {}", type_name(*output)));
    complete = false;
  } else if (output) {
    Keys keys(*output->as_table(), diagnostics, "output", "output");
    const auto directory = keys.string("directory");
    const auto file = keys.string("file");
    const auto to_stdout = keys.boolean("stdout");
    if (const auto overwrite = keys.boolean("overwrite")) spec.overwrite = *overwrite;
    keys.finish();
    const int given = int(directory.has_value()) + int(file.has_value()) + int(to_stdout.value_or(false));
    const bool wrong =
        (keys.has("directory") && !directory) || (keys.has("file") && !file) || (keys.has("stdout") && !to_stdout);
    if (given != 1 && !wrong) keys.fail(*output, "give exactly one of 'directory', 'file' or 'stdout = true'");
    if (given != 1) complete = false;
    if (directory) {
      spec.output = *directory;
      spec.output_is_directory = true;
    } else if (file) {
      spec.output = *file;
    } else {
      spec.output = "-";
    }
  }

  // Unknown tables and keys; a table missing is not reported again when a misspelling of it was.
  const std::vector<std::string> suggested = top.finish();
  const auto missing = [&](const toml::node* node, const std::string& key, const std::string& what) {
    if (node) return;
    complete = false;
    if (std::find(suggested.begin(), suggested.end(), key) == suggested.end()) diagnostics.add(root.source(), what);
  };
  missing(input, "input", "the [input] table is missing");
  missing(stages, "stage", "no [[stage]] given");
  missing(output, "output", "the [output] table is missing");

  if (complete) {
    // The stages' order and the output's kind, each problem at the line of the stage or table.
    for (const auto& problem : detail::pipeline_problems(spec)) {
      using Part = detail::PipelineProblem::Part;
      switch (problem.part) {
        case Part::kStage:
          diagnostics.add(stage_nodes[problem.stage]->source(), problem.message);
          break;
        case Part::kInput:
          diagnostics.add(place_of(input, root), "input: " + problem.message);
          break;
        case Part::kOutput:
          diagnostics.add(place_of(output, root), "output: " + problem.message);
          break;
        case Part::kPipeline:
          diagnostics.add_unplaced(problem.message);
          break;
      }
    }
  }
  diagnostics.throw_if_any();
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
