// End-to-end tests of `slitstep analyze` and `slitstep population`: the simulator's default
// product analysed (paper-like table, four products, fitsverify, summary keys), and bad inputs
// (missing redshift, missing LSF, unreadable cube, bad config key, bad population CSVs) -> exit 2
// with one line naming the file / key.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/table_io.hpp"
#include "helpers/paths.hpp"

using namespace slitstep;
using namespace slitstep::test;

namespace {

int lines_of(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// One default simulation shared by the tests of this file.
const std::string& default_cube() {
  static TempDir dir("cli-analyze-sim");
  static const std::string cube = [] {
    const auto r = run_cli("demo -o " + dir.file("sim") + " --threads 2");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return dir.file("sim/cube.fits");
  }();
  return cube;
}

}  // namespace

TEST(CliAnalyze, DefaultProductGivesTableAndFourProducts) {
  TempDir dir("cli-analyze");
  const auto r = run_cli("analyze " + default_cube() + " -o " + dir.file("out") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s\n", r.output.c_str());
  EXPECT_NE(r.output.find("grad (dex/kpc)"), std::string::npos);
  EXPECT_NE(r.output.find("v_c/sigma0"), std::string::npos);
  EXPECT_NE(r.output.find("redshift 1 (stored configuration"), std::string::npos);
  EXPECT_NE(r.output.find("NIRSpec G140H"), std::string::npos);
  for (const char* f : {"maps.fits", "spaxels.csv", "summary.json", "report.txt"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("out/") + f))) << f;
  const auto fv = run_command("fitsverify -q " + dir.file("out/maps.fits"));
  EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << fv.output;
  const std::string js = read_text(dir.file("out/summary.json"));
  for (const char* k : {"gradient_dex_per_kpc", "gradient_dex_per_re", "rmse_dex", "n_spaxels_sf", "classification",
                        "center_arcsec", "vc_kms", "rt_arcsec", "sigma0_kms", "v_over_sigma", "inclination_deg",
                        "pa_deg", "mdyn_msun", "status"})
    EXPECT_NE(js.find(std::string("\"") + k + "\":"), std::string::npos) << k;
  const CsvTable t = read_csv(dir.file("out/spaxels.csv"));
  EXPECT_EQ(t.num_rows(), 23u * 30u);
  for (const char* c : {"x_arcsec", "y_arcsec", "radius_kpc", "halpha_flux", "halpha_snr", "velocity_kms", "sigma_kms",
                        "n2", "z_12logoh", "z_err", "class", "selected"})
    EXPECT_TRUE(t.has_column(c)) << c;
  // Same input, same products (deterministic, thread count irrelevant).
  const auto r1 = run_cli("analyze " + default_cube() + " -o " + dir.file("out1") + " --threads 1");
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  EXPECT_EQ(read_text(dir.file("out1/spaxels.csv")), read_text(dir.file("out/spaxels.csv")));
}

TEST(CliAnalyze, ConfigTablesAreReadAndUnknownKeysRefused) {
  TempDir dir("cli-analyze-cfg");
  write_text(dir.file("ok.toml"), "[analysis]\nmin_halpha_snr = 3\npa_deg = 30\ninclination_deg = 55\n"
                                  "re_kpc = 2.85\n[lines]\nsigma_start_kms = 60\n");
  const auto ok = run_cli("analyze " + default_cube() + " --config " + dir.file("ok.toml") + " -o " + dir.file("o"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("(given)"), std::string::npos) << ok.output;
  write_text(dir.file("bad.toml"), "[analysis]\nmin_halpha_snrr = 3\n");
  const auto bad = run_cli("analyze " + default_cube() + " --config " + dir.file("bad.toml") + " -o " + dir.file("b"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_EQ(lines_of(bad.output), 1) << bad.output;
  EXPECT_NE(bad.output.find("bad.toml"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("min_halpha_snrr"), std::string::npos) << bad.output;
  write_text(dir.file("bad2.toml"), "[analysis]\ndiagram = \"XYZ\"\n");
  const auto bad2 = run_cli("analyze " + default_cube() + " --config " + dir.file("bad2.toml") + " -o " + dir.file("c"));
  EXPECT_EQ(bad2.exit_code, 2);
  EXPECT_NE(bad2.output.find("analysis.diagram"), std::string::npos) << bad2.output;
}

TEST(CliAnalyze, BadInputsExitTwoWithOneLine) {
  TempDir dir("cli-analyze-bad");
  const std::string muse = shared_data("muse_udf_subcube/subcub_mosaic.fits");
  const std::string gmos = shared_data("gmos_ngc3081/ngc3081_cube.fits");
  struct Case {
    std::string args, must_contain;
  } cases[] = {
      {"analyze " + muse + " --lsf-fwhm-A 2.6 -o " + dir.file("a"), "--redshift"},          // no redshift
      {"analyze " + gmos + " -o " + dir.file("b"), "line-spread function is unknown"},      // no LSF
      {"analyze " + dir.file("nope.fits") + " --redshift 1 --lsf-R 3000 -o " + dir.file("c"), "nope.fits"},
      {"analyze " + gmos + " --lsf-fwhm-A 2 --lsf-R 3000 -o " + dir.file("d"), "only one of"},
      {"analyze " + gmos + " --lsf-fwhm-A -1 -o " + dir.file("e"), "--lsf-fwhm-A"},
  };
  write_text(dir.file("nope.fits"), "not a FITS file");
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_EQ(lines_of(r.output), 1) << r.output;
    EXPECT_NE(r.output.find(c.must_contain), std::string::npos) << r.output;
  }
}

TEST(CliPopulation, PaperLikeSampleAndBadCsvs) {
  TempDir dir("cli-pop");
  std::string csv = "id,log_mstar,gradient_dex_per_kpc,gradient_err\n";
  const double m[] = {9.1, 9.4, 9.6, 9.8, 10.0, 10.2, 10.4, 10.7, 10.9, 11.1};
  const double g[] = {0.012, -0.004, 0.003, -0.015, -0.006, -0.012, -0.020, -0.011, -0.031, -0.019};
  for (int k = 0; k < 10; ++k) {
    char row[96];
    std::snprintf(row, sizeof row, "g%d,%.2f,%.4f,0.01\n", k, m[k], g[k]);
    csv += row;
  }
  write_text(dir.file("s.csv"), csv);
  const auto r = run_cli("population " + dir.file("s.csv") + " -o " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s\n", r.output.c_str());
  const std::string js = read_text(dir.file("out/population.json"));
  for (const char* k : {"\"slope\":", "\"intercept\":", "\"pearson_r\":", "\"pearson_p\":", "\"rms_dex_per_kpc\":"})
    EXPECT_NE(js.find(k), std::string::npos) << k;
  EXPECT_NE(js.find("\"n_bootstrap\": 1000"), std::string::npos);

  struct Bad {
    std::string text, must_contain;
  } bad[] = {
      {"id,log_mstar,gradient_err\na,10,0.01\n", "missing column 'gradient_dex_per_kpc'"},
      {"id,log_mstar,gradient_dex_per_kpc,gradient_err\na,10,0.01,0.01\nb,ten,0.0,0.01\nc,9,0,0.01\nd,9.5,0,0.01\n",
       "b.csv:3: column 'log_mstar' = 'ten': not a number"},
      {"id,log_mstar,gradient_dex_per_kpc,gradient_err\na,10,nan,0.01\nb,9,0,0.01\nc,9,0,0.01\nd,9.5,0,0.01\n",
       "b.csv:2: column 'gradient_dex_per_kpc' = 'nan': not finite"},
      {"id,log_mstar,gradient_dex_per_kpc,gradient_err\na,10,0.01,0.01\nb,9,0,0.01\n", "at least 4"},
  };
  for (const auto& b : bad) {
    write_text(dir.file("b.csv"), b.text);
    const auto rb = run_cli("population " + dir.file("b.csv") + " -o " + dir.file("ob"));
    EXPECT_EQ(rb.exit_code, 2) << rb.output;
    EXPECT_EQ(lines_of(rb.output), 1) << rb.output;
    EXPECT_NE(rb.output.find(b.must_contain), std::string::npos) << rb.output;
  }
}
