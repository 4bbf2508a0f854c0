// End-to-end tests of `slitstep render` / `slitstep demo`: good configs produce valid products;
// crafted bad configs each give exit code 2 and one line naming the file, the key and the value.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "helpers/paths.hpp"

using namespace slitstep::test;

namespace {

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += (c == '\n');
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

struct BadConfig {
  const char* name;
  const char* text;
  const char* must_contain;  // besides the file name
};

}  // namespace

TEST(CliRender, RendersAConfigIntoValidProducts) {
  TempDir dir("render-good");
  const auto cfg = dir.file("g.toml");
  write_text(cfg,
             "seed = 11\n[galaxy]\nredshift = 1.2\ninclination_deg = 40\ngradient_dex_per_kpc = -0.05\n"
             "[sky]\naperture_pa_deg = 45\n");
  const auto r = run_cli("render " + cfg + " -o " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto sky = dir.file("out/sky.fits");
  const auto truth = read_text(dir.file("out/truth.json"));
  ASSERT_TRUE(std::filesystem::exists(sky));
  EXPECT_NE(truth.find("\"redshift\": 1.2"), std::string::npos) << truth;
  EXPECT_NE(truth.find("\"inclination_deg\": 40"), std::string::npos);
  EXPECT_NE(truth.find("\"gradient_dex_per_kpc\": -0.05"), std::string::npos);
  EXPECT_NE(truth.find("\"seed\": 11"), std::string::npos);
  for (const char* key : {"re_arcsec", "pa_deg", "vc_kms", "rt_arcsec", "sigma0_kms", "z0_12logoh",
                          "halpha_flux_cgs"})
    EXPECT_NE(truth.find(std::string("\"") + key + "\""), std::string::npos) << key;
  const auto fv = run_command("fitsverify -q " + sky);
  EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << fv.output;
  const auto info = run_cli("info " + sky);
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("SCI"), std::string::npos) << info.output;
  // No temporary files are left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.file("out")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(CliRender, DemoWritesSkyCubeAndTruthAndPrintsATable) {
  TempDir dir("demo");
  const auto r = run_cli("demo -o " + dir.file("d"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("d/sky.fits")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("d/truth.json")));
  EXPECT_NE(r.output.find("180"), std::string::npos) << r.output;  // v_c of the default galaxy
  const auto truth = read_text(dir.file("d/truth.json"));
  EXPECT_NE(truth.find("\"inclination_deg\": 55"), std::string::npos) << truth;
  EXPECT_NE(truth.find("\"re_arcsec\": 0.35"), std::string::npos);
}

TEST(CliRender, BadConfigsGiveOneLineNamingFileKeyValueAndExitCode2) {
  const BadConfig cases[] = {
      {"incl", "[galaxy]\ninclination_deg = 95\n", "galaxy.inclination_deg = 95"},
      {"ba", "[galaxy]\naxis_ratio = 1.2\n", "galaxy.axis_ratio = 1.2"},
      {"z0", "[galaxy]\nredshift = 0\n", "galaxy.redshift = 0"},
      {"zneg", "[galaxy]\nredshift = -1.5\n", "galaxy.redshift = -1.5"},
      {"typo", "[galaxy]\nredshift = 1.0\ninclnation_deg = 50\n", "galaxy.inclnation_deg"},
      {"table", "[galaxxy]\nredshift = 1.0\n", "galaxxy"},
      {"type", "[galaxy]\nre_arcsec = \"big\"\n", "galaxy.re_arcsec"},
      {"syntax", "[galaxy\nredshift = 1.0\n", "syntax"},
      {"profile", "[galaxy]\nlight_profile = \"gaussian2\"\n", "galaxy.light_profile"},
      {"calib", "[galaxy]\ncalibration = \"XYZ\"\n", "galaxy.calibration"},
      {"flux", "[galaxy]\nhalpha_flux_cgs = -1e-17\n", "galaxy.halpha_flux_cgs"},
      {"sigma", "[galaxy]\nsigma0_kms = -5\n", "galaxy.sigma0_kms"},
      {"dec", "[sky]\ndec_deg = 95\n", "sky.dec_deg"},
      {"pixel", "[render]\npixel_arcsec = 0\n", "render.pixel_arcsec"},
      {"nan", "[galaxy]\nre_arcsec = nan\n", "galaxy.re_arcsec"},
      {"seed", "seed = -3\n", "seed"},
      {"clump", "[[galaxy.clumps]]\nx_arcsec = 0.1\ny_arcsec = 0.0\nsigma_arcsec = -0.01\nhalpha_flux_cgs = 1e-18\n",
       "sigma_arcsec"},
  };
  TempDir dir("render-bad");
  for (const auto& c : cases) {
    const std::string path = dir.file(std::string(c.name) + ".toml");
    write_text(path, c.text);
    const auto r = run_cli("render " + path + " -o " + dir.file(std::string("out-") + c.name));
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.output;
    EXPECT_EQ(count_lines(r.output), 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(path), std::string::npos) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.must_contain), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir.file(std::string("out-") + c.name + "/sky.fits"))) << c.name;
  }
}

TEST(CliRender, MissingOrBinaryConfigFilesAndBadOutputFolder) {
  TempDir dir("render-files");
  auto r = run_cli("render " + dir.file("nope.toml") + " -o " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nope.toml"), std::string::npos);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;

  const auto bin = dir.file("bin.toml");
  write_text(bin, std::string("\x7f" "ELF\0\0\x01", 7));
  r = run_cli("render " + bin + " -o " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bin.toml"), std::string::npos) << r.output;

  const auto good = dir.file("good.toml");
  write_text(good, "[galaxy]\nredshift = 1.0\n");
  const auto file_as_dir = dir.file("afile");
  write_text(file_as_dir, "x");
  r = run_cli("render " + good + " -o " + file_as_dir);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("afile"), std::string::npos) << r.output;

  r = run_cli("render");  // missing argument
  EXPECT_EQ(r.exit_code, 2) << r.output;
}
