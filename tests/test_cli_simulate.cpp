// End-to-end tests of `slitstep simulate`: products, fitsverify, info, --noiseless, bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.hpp"
#include "core/cube_io.hpp"
#include "helpers/paths.hpp"
#include "instruments/exposure_io.hpp"
#include "sim/simulate.hpp"

using namespace slitstep::test;

namespace {

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += (c == '\n');
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

const char* kConfig =
    "seed = 21\n[galaxy]\nredshift = 1.0\nre_arcsec = 0.25\nhalpha_flux_cgs = 3e-17\n"
    "[render]\nlines = \"halpha,nii6584\"\n[slitlet]\nshutter_i = 100\n";

}  // namespace

TEST(CliSimulate, WritesExposuresCubeAndTruthThatVerify) {
  TempDir dir("sim-good");
  const auto cfg = dir.file("s.toml");
  write_text(cfg, kConfig);
  const auto r = run_cli("simulate " + cfg + " -o " + dir.file("out") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int n = 0;
  std::string one;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("out/exposures"))) {
    ++n;
    one = e.path().string();
  }
  EXPECT_EQ(n, 63);
  const auto cube = dir.file("out/cube.fits");
  ASSERT_TRUE(std::filesystem::exists(cube));
  const auto truth = read_text(dir.file("out/truth.json"));
  EXPECT_NE(truth.find("\"observation\""), std::string::npos);
  EXPECT_NE(truth.find("\"n_pointings\": 63"), std::string::npos) << truth;
  EXPECT_NE(truth.find("\"seed\": 21"), std::string::npos);
  for (const auto& f : {cube, one}) {
    const auto fv = run_command("fitsverify -q " + f);
    EXPECT_NE(fv.output.find("verification OK"), std::string::npos) << f << ": " << fv.output;
    const auto info = run_cli("info " + f);
    EXPECT_EQ(info.exit_code, 0) << info.output;
    EXPECT_NE(info.output.find("SCI"), std::string::npos) << info.output;
  }
  // the cube header records the observation and the config
  const auto meta = slitstep::read_product_meta(cube);
  EXPECT_EQ(meta.product_type, "CUBE");
  EXPECT_EQ(meta.seed, 21u);
  EXPECT_EQ(slitstep::read_product_config(cube), std::string(kConfig));
  const auto hdr = run_command("/usr/bin/python3 -c \"from astropy.io import fits; h=fits.getheader('" + cube +
                               "'); print(h['GRATING'], h['FILTER'], h['QUADRANT'], h['SHUTTRI'], h['NSHUTTER'], "
                               "h['PATTERN'], h['EXPTIME'])\"");
  EXPECT_NE(hdr.output.find("G140H F100LP 3 100 3 9x7 serpentine 1166.0"), std::string::npos) << hdr.output;
  const auto ex = slitstep::read_exposure(one);
  EXPECT_EQ(ex.exposure.seed, 21u);
  for (const auto& e : std::filesystem::directory_iterator(dir.file("out")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(CliSimulate, NoiselessGivesTheModelInSciAndPositiveErr) {
  TempDir dir("sim-noiseless");
  const auto cfg = dir.file("s.toml");
  write_text(cfg, kConfig);
  const auto r = run_cli("simulate " + cfg + " -o " + dir.file("out") + " --noiseless --seed 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const slitstep::Cube c = slitstep::read_cube(dir.file("out/cube.fits"));
  // the in-process noiseless model of the same configuration
  const slitstep::Config conf = slitstep::Config::from_string(kConfig, "s.toml");
  const auto sc = slitstep::read_simulation_config(conf);
  slitstep::SimulateOptions o;
  o.noiseless = true;
  const auto model = slitstep::simulate(sc, o);
  const slitstep::Cube& m = model.reconstruct.cube;
  ASSERT_EQ(c.size(), m.size());
  double peak = 0.0, diff = 0.0;
  std::size_t good = 0, err_pos = 0;
  for (std::size_t p = 0; p < m.size(); ++p) {
    if (m.dq[p] != 0) continue;
    ++good;
    err_pos += c.err[p] > 0.0;
    peak = std::max(peak, std::abs(m.sci[p]));
    diff = std::max(diff, std::abs(c.sci[p] - m.sci[p]));
  }
  EXPECT_GT(good, 100000u);
  EXPECT_EQ(err_pos, good);
  EXPECT_LT(diff, 1e-6 * peak);  // float32 storage
  const auto ex = slitstep::read_exposure(dir.file("out/exposures/" + slitstep::exposure_file_name(model.exposures[0].pointing)));
  EXPECT_EQ(ex.exposure.seed, 0u);
}

TEST(CliSimulate, BadInputGivesOneLineAndExitCode2) {
  struct Case {
    const char* text;
    const char* must_contain;
  };
  const Case cases[] = {
      {"[instrument]\nread_noise_e = -1\n", "instrument.read_noise_e = -1"},
      {"[instrument]\ngratting = \"G140H\"\n", "instrument.gratting"},
      {"[slitlet]\nquadrant = 5\n", "slitlet.quadrant = 5"},
      {"[reconstruct]\ncombine = \"mode\"\n", "reconstruct.combine"},
      {"[noise]\nshot = true\n", "noise.shot"},
      {"[galaxy]\nredshift = 2.5\n", "galaxy.redshift = 2.5"},
  };
  TempDir dir("sim-bad");
  int k = 0;
  for (const auto& c : cases) {
    const auto cfg = dir.file("bad" + std::to_string(k++) + ".toml");
    write_text(cfg, c.text);
    const auto r = run_cli("simulate " + cfg + " -o " + dir.file("out"));
    EXPECT_EQ(r.exit_code, 2) << c.text << r.output;
    EXPECT_EQ(count_lines(r.output), 1) << r.output;
    EXPECT_NE(r.output.find(cfg), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.must_contain), std::string::npos) << r.output;
  }
  const auto r = run_cli("simulate " + dir.file("bad5.toml") + " -o " + dir.file("out"));
  EXPECT_NE(r.output.find("0.97-1.89 um"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/cube.fits")));
}
