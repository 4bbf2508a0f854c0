#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/error.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no error>";
}
}  // namespace

TEST(Config, ReadsTypedValuesAndTables) {
  auto c = Config::from_string("seed = 7\n[galaxy]\nredshift = 1.5\nn = 3\nname = \"a\"\nflag = true\n"
                               "list = [1, 2.5]\n[[galaxy.clumps]]\nx = 1\n[[galaxy.clumps]]\nx = 2\n",
                               "t.toml");
  auto root = c.root();
  std::uint64_t seed = 0;
  EXPECT_TRUE(root.get("seed", seed));
  EXPECT_EQ(seed, 7u);
  auto g = root.table("galaxy");
  double z = 0;
  int n = 0;
  std::string name;
  bool flag = false;
  std::vector<double> list;
  EXPECT_TRUE(g.get("redshift", z));
  EXPECT_TRUE(g.get("n", n));
  EXPECT_TRUE(g.get("name", name));
  EXPECT_TRUE(g.get("flag", flag));
  EXPECT_TRUE(g.get("list", list));
  EXPECT_DOUBLE_EQ(z, 1.5);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(name, "a");
  EXPECT_TRUE(flag);
  ASSERT_EQ(list.size(), 2u);
  auto clumps = g.table_array("clumps");
  ASSERT_EQ(clumps.size(), 2u);
  double x = 0;
  clumps[1].get("x", x);
  clumps[0].get("x", x);
  EXPECT_DOUBLE_EQ(x, 1.0);
  double absent = 42;
  EXPECT_FALSE(g.get("absent", absent));
  EXPECT_DOUBLE_EQ(absent, 42);
  EXPECT_NO_THROW(c.check_all_used());
}

TEST(Config, UnknownKeyNamesFileLineKeyAndSuggestion) {
  auto c = Config::from_string("[galaxy]\nredshift = 1.0\ninclnation_deg = 50\n", "cfg.toml");
  double v;
  c.root().table("galaxy").get("redshift", v);
  c.root().table("galaxy").get("inclination_deg", v);
  const auto msg = message_of([&] { c.check_all_used(); });
  EXPECT_NE(msg.find("cfg.toml:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("galaxy.inclnation_deg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'inclination_deg'"), std::string::npos) << msg;
}

TEST(Config, UnknownTopLevelTableIsRefused) {
  auto c = Config::from_string("[galaxx]\nredshift = 1.0\n", "cfg.toml");
  c.root().table("galaxy");
  EXPECT_NE(message_of([&] { c.check_all_used(); }).find("unknown key 'galaxx'"), std::string::npos);
}

TEST(Config, WrongTypesAndNonFiniteValuesAreRefusedWithLine) {
  auto c = Config::from_string("a = \"x\"\nb = nan\nc = 1.5\nd = [1, \"q\"]\n", "v.toml");
  auto r = c.root();
  double d;
  int i;
  std::vector<double> l;
  EXPECT_NE(message_of([&] { r.get("a", d); }).find("v.toml:1: a = 'x': expected a number"), std::string::npos)
      << message_of([&] { r.get("a", d); });
  EXPECT_NE(message_of([&] { r.get("b", d); }).find("v.toml:2: b = nan"), std::string::npos);
  EXPECT_NE(message_of([&] { r.get("c", i); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(message_of([&] { r.get("d", l); }).find("v.toml:4"), std::string::npos);
}

TEST(Config, SyntaxErrorsAndMissingFiles) {
  const auto m1 = message_of([] { Config::from_string("a = = 1\n", "bad.toml"); });
  EXPECT_NE(m1.find("bad.toml:1:"), std::string::npos) << m1;
  EXPECT_NE(m1.find("TOML syntax error"), std::string::npos) << m1;
  const auto m2 = message_of([] { Config::from_file("/nonexistent/x.toml"); });
  EXPECT_NE(m2.find("/nonexistent/x.toml"), std::string::npos) << m2;
}

TEST(Config, StringListsAndShortNumbersInMessages) {
  auto c = Config::from_string("lines = [\"halpha\", \"nii6584\"]\nx = -0.1\n", "s.toml");
  std::vector<std::string> lines;
  EXPECT_TRUE(c.root().get("lines", lines));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "nii6584");
  EXPECT_EQ(message_of([&] { c.root().fail("x", "bad"); }), "s.toml:2: x = -0.1: bad");
}

TEST(Config, FailNamesTheValue) {
  auto c = Config::from_string("[galaxy]\ninclination_deg = 95\n", "g.toml");
  auto g = c.root().table("galaxy");
  const auto m = message_of([&] { g.fail("inclination_deg", "must be in [0, 90]"); });
  EXPECT_EQ(m, "g.toml:2: galaxy.inclination_deg = 95: must be in [0, 90]");
}
