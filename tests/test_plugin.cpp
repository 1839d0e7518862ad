// Cell plugins (rnnkit/plugin.h): the example's MGU loads from its shared library and registers
// its cell; refused plugins say which file and why.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>

namespace {

using namespace rnnkit;

// Whether a plugin from `path` (its file name) is among the loaded ones.
bool is_loaded(const std::string& path) {
  const std::string file = path.substr(path.rfind('/') + 1);
  for (const auto& p : loaded_plugins()) {
    if (p.path.substr(p.path.rfind('/') + 1) == file) return true;
  }
  return false;
}

// The message of the PluginError that loading `path` throws ("" if it loads).
std::string refusal(const std::string& path) {
  try {
    load_plugin(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

TEST(Plugin, LoadsTheExampleAndRegistersItsCell) {
  const PluginInfo& info = load_plugin(RNNKIT_PLUGIN_MGU);
  EXPECT_EQ(info.name, "mgu");
  EXPECT_EQ(info.cells, std::vector<std::string>{"mgu"});
  EXPECT_EQ(cell_plugin("mgu"), info.path);
  EXPECT_EQ(cell_plugin("lstm"), "") << "built-in cells come from no plugin";
  // Loading it again is the same load, and the cell works in a layer, in float64.
  EXPECT_EQ(&load_plugin(RNNKIT_PLUGIN_MGU), &info);
  EXPECT_TRUE(is_loaded(RNNKIT_PLUGIN_MGU));
  auto rnn = RNN(RNNOptions("mgu", 3, 5).bidirectional(true));
  rnn->to(torch::kDouble);
  const auto out = rnn->forward(torch::randn({4, 2, 3}, torch::kDouble));
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{4, 2, 10}));
  EXPECT_EQ(out.output.scalar_type(), torch::kDouble);
}

TEST(Plugin, AbiTagNamesTheVersions) {
  const std::string tag = abi_tag();
  EXPECT_NE(tag.find(std::string("rnnkit ") + RNNKIT_VERSION + ";"), std::string::npos) << tag;
  EXPECT_NE(tag.find("torch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                     std::to_string(TORCH_VERSION_MINOR)),
            std::string::npos)
      << tag;
  EXPECT_EQ(tag, RNNKIT_ABI_TAG) << "the header and the library agree in this build";
}

TEST(Plugin, RefusesAPluginOfAnotherVersionBeforeRunningIt) {
  const std::string m = refusal(RNNKIT_PLUGIN_BAD_ABI);
  EXPECT_NE(m.find(RNNKIT_PLUGIN_BAD_ABI), std::string::npos) << m;
  EXPECT_NE(m.find("built against 'rnnkit 0.0.1"), std::string::npos) << m;
  EXPECT_NE(m.find("rebuild it against this rnnkit"), std::string::npos) << m;
  EXPECT_FALSE(is_loaded(RNNKIT_PLUGIN_BAD_ABI));
  EXPECT_FALSE(has_cell("mgu") && cell_plugin("mgu") != "" &&
               cell_plugin("mgu").find("bad_abi") != std::string::npos)
      << "its body did not run";
}

TEST(Plugin, RefusalsNameThePathAndTheReason) {
  struct Case {
    std::string path, expected;
  };
  const std::vector<Case> cases = {
      {"/nonexistent/libnothing.so",
       "/nonexistent/libnothing.so: cannot load the plugin: no such file"},
      {RNNKIT_PLUGIN_NOT_A_PLUGIN, "not an rnnkit plugin"},
      {RNNKIT_PLUGIN_THROWS, "registration failed: boom in the plugin body"},
      {RNNKIT_PLUGIN_BUILTIN_NAME, "registers cell 'lstm', which is built into rnnkit"},
      {RNNKIT_PLUGIN_EMPTY, "registered no cell"},
      // Not a shared library at all: dlopen's own words.
      {RNNKIT_SOURCE_DIR "/tests/test_plugin.cpp", "invalid ELF header"},
  };
  for (const auto& c : cases) {
    const std::string m = refusal(c.path);
    EXPECT_NE(m.find(c.expected), std::string::npos) << c.path << ": " << m;
    if (c.path[0] == '/' && c.path.rfind("/nonexistent", 0) != 0) {
      EXPECT_NE(m.find(c.path.substr(c.path.rfind('/'))), std::string::npos) << m;
    }
    EXPECT_FALSE(is_loaded(c.path)) << c.path;
  }
  // The built-in LSTM is untouched by the plugin that tried to replace it.
  EXPECT_EQ(cell_plugin("lstm"), "");
  EXPECT_TRUE(make_cell("lstm", CellSpec(2, 3))->has_memory_cell());
}

TEST(Plugin, HostilePluginsAreRefusedNamingTheFile) {
  struct Case {
    std::string path, expected;
  };
  const std::vector<Case> cases = {
      {RNNKIT_PLUGIN_THROWS_INT,
       "registration failed: it threw something that is not a "
       "std::exception"},
      {RNNKIT_PLUGIN_NULL_NAME, "its rnnkit_plugin_name() returned a null pointer"},
      {RNNKIT_PLUGIN_NULL_ABI, "its rnnkit_plugin_abi_tag() returned a null pointer"},
      {RNNKIT_PLUGIN_HUGE_ABI, "built against 'xxxx"},
  };
  for (const auto& c : cases) {
    const std::string m = refusal(c.path);
    EXPECT_NE(m.find(c.path), std::string::npos) << m.substr(0, 500);
    EXPECT_NE(m.find(c.expected), std::string::npos) << m.substr(0, 500);
    EXPECT_LT(m.size(), 2000u) << "a 10 MB tag is cut, not echoed whole";
  }
}

TEST(Plugin, RecordsItsSha256AndRefusesOtherBytesBeforeLoading) {
  const std::string marker = ::testing::TempDir() + "/rnnkit_marker_ran";
  std::remove(marker.c_str());
  ::setenv("RNNKIT_TEST_MARKER", marker.c_str(), 1);
  const std::string sha = file_sha256(RNNKIT_PLUGIN_MARKER);
  EXPECT_EQ(sha.size(), 64u) << sha;
  // The wrong hash: refused with both hashes, and the library's static constructor never ran.
  const std::string wrong(64, '0');
  const std::string m = [&] {
    try {
      load_plugin(RNNKIT_PLUGIN_MARKER, wrong);
    } catch (const PluginError& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(m.find("its sha256 is " + sha + ", the checkpoint records " + wrong), std::string::npos)
      << m;
  EXPECT_FALSE(std::ifstream(marker).good()) << "the refused plugin's code ran";
  // The right hash: loaded, its constructor ran, and the info carries the hash.
  const PluginInfo& info = load_plugin(RNNKIT_PLUGIN_MARKER, sha);
  EXPECT_EQ(info.sha256, sha);
  EXPECT_TRUE(std::ifstream(marker).good());
  // A second plugin with the same cell name: refused naming both files; the first one's stays.
  const std::string dup = refusal(RNNKIT_PLUGIN_DUPLICATE);
  EXPECT_NE(dup.find(std::string(RNNKIT_PLUGIN_DUPLICATE) + ": the plugin registers cell "
                                                            "'marker_gru', which the plugin "),
            std::string::npos)
      << dup;
  EXPECT_NE(dup.find(info.path + " registered already"), std::string::npos) << dup;
  EXPECT_EQ(cell_plugin("marker_gru"), info.path);
  ::unsetenv("RNNKIT_TEST_MARKER");
}

TEST(Plugin, NamesASymlinkLoopAndRefusesWhatIsNotARegularFile) {
  const std::string dir = ::testing::TempDir();
  const std::string a = dir + "/rnnkit_loop_a.so", b = dir + "/rnnkit_loop_b.so";
  std::remove(a.c_str());
  std::remove(b.c_str());
  ASSERT_EQ(::symlink(b.c_str(), a.c_str()), 0);
  ASSERT_EQ(::symlink(a.c_str(), b.c_str()), 0);
  EXPECT_NE(refusal(a).find(a + ": cannot load the plugin: a loop of symbolic links"),
            std::string::npos)
      << refusal(a);
  EXPECT_NE(refusal("/dev/zero").find("/dev/zero: cannot load the plugin: not a regular file"),
            std::string::npos)
      << refusal("/dev/zero");
  std::remove(a.c_str());
  std::remove(b.c_str());
}

}  // namespace
