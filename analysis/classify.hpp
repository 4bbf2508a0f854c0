#pragma once
// slitstep/analysis: ionisation-source classification of spaxels from line ratios and
// equivalent widths (pure functions, no I/O). Formulas: shared reference calibrations.md §3.2.
//
// BPT [NII] diagram, x = log([NII]6584/Halpha), y = log([OIII]5007/Hbeta):
//   Kauffmann+2003 (Ka03) SF / composite:     y = 0.61 / (x - 0.05) + 1.30,  for x < 0.05
//   Kewley+2001 (Ke01) maximum starburst:     y = 0.61 / (x - 0.47) + 1.19,  for x < 0.47
//   Schawinski+2007 (S07) Seyfert / LINER:    y = 1.05 x + 0.45, applied above Ke01
//   SF:        below Ka03 (x < 0.05 and y < Ka03(x));
//   composite: not SF, below Ke01 (x < 0.47 and y < Ke01(x));
//   AGN:       above Ke01 and y > S07(x) (Seyfert);  LINER: above Ke01 and y <= S07(x).
//   x >= 0.05 is above Ka03 and x >= 0.47 is above Ke01 (the hyperbolas' left branches only).
//   A point exactly on a curve is counted above it. For x < -1.2805 the Ka03 curve lies above
//   Ke01; a point between them there is SF (the Ka03 test is applied first).
// BPT [SII] diagram (Kewley+2006), x = log(([SII]6717+6731)/Halpha):
//   SF below y = 0.72/(x - 0.32) + 1.30 (x < 0.32); above it AGN (Seyfert) if y > 1.89 x + 0.76,
//   else LINER. The [SII] diagram has no composite class.
// WHAN (Cid Fernandes+2011), x = log([NII]6584/Halpha), W = EW(Halpha) in Angstrom (emission > 0):
//   passive:  W < 0.5 and EW([NII]6584) < 0.5;   retired: W < 3 (and not passive);
//   SF:       x < -0.4 and W >= 3;
//   AGN (strong AGN):  x >= -0.4 and W > 6;    LINER (weak AGN): x >= -0.4 and 3 <= W <= 6.
//   Edges: W = 3 is not retired, W = 6 is weak AGN, x = -0.4 is on the AGN side, W = 0.5 is
//   not passive (the paper's strict inequalities each keep their own side open).
// Non-finite inputs (NaN, and +-inf from a zero flux in a ratio) give kUnclassified: limits need
// a treatment of their own and are not guessed here.
// Options are validated by the caller once (ClassifyOptions::validate()); the classify functions
// do not re-validate per spaxel and never throw.
#include <string_view>

namespace slitstep {

enum class SpaxelClass { kStarForming, kComposite, kAGN, kLINER, kRetired, kPassive, kUnclassified };

/// "SF", "composite", "AGN", "LINER", "retired", "passive", "unclassified".
std::string_view spaxel_class_name(SpaxelClass c);
/// Parses the names above (case-sensitive); returns false if unknown.
bool spaxel_class_from_name(std::string_view name, SpaxelClass& out);

/// Every threshold of the diagnostics; defaults are the papers' values.
/// Demarcation hyperbolas are y = a / (x - x0) + c, used on their left branch (x < x0).
struct ClassifyOptions {
  // Kewley et al. 2001, ApJ 556, 121: maximum starburst line (N2 diagram).
  double ke01_a = 0.61;
  double ke01_x0 = 0.47;
  double ke01_c = 1.19;
  // Kauffmann et al. 2003, MNRAS 346, 1055: empirical SF / composite line (N2 diagram).
  double ka03_a = 0.61;
  double ka03_x0 = 0.05;
  double ka03_c = 1.30;
  // Schawinski et al. 2007, MNRAS 382, 1415: Seyfert / LINER line on the N2 diagram.
  double s07_slope = 1.05;
  double s07_intercept = 0.45;
  // true: split the region above Ke01 into AGN (Seyfert, above S07) and LINER; false: all AGN.
  bool split_seyfert_liner = true;
  // Kewley et al. 2006, MNRAS 372, 961: [SII] diagram SF boundary and Seyfert / LINER line.
  double ke06_sii_a = 0.72;
  double ke06_sii_x0 = 0.32;
  double ke06_sii_c = 1.30;
  double ke06_sii_slope = 1.89;
  double ke06_sii_intercept = 0.76;
  // Cid Fernandes et al. 2011, MNRAS 413, 1687 (WHAN).
  double whan_n2 = -0.4;               // log([NII]/Halpha) SF / AGN split
  double whan_ew_retired_A = 3.0;      // EW(Halpha) below which a spaxel is retired
  double whan_ew_strong_agn_A = 6.0;   // EW(Halpha) above which an AGN is strong
  double whan_ew_passive_A = 0.5;      // EW(Halpha) and EW([NII]) below which it is passive
  /// Throws InvalidOptions naming the field, the value and the rule.
  void validate() const;
};

/// Demarcation curves, y as a function of x; NaN where the curve is not defined (x >= x0 for the
/// hyperbolas: there every point counts as above the curve).
double kewley01_y(double log_nii_ha, const ClassifyOptions& o = {});
double kauffmann03_y(double log_nii_ha, const ClassifyOptions& o = {});
double schawinski07_y(double log_nii_ha, const ClassifyOptions& o = {});
double kewley06_sii_sf_y(double log_sii_ha, const ClassifyOptions& o = {});
double kewley06_sii_seyfert_liner_y(double log_sii_ha, const ClassifyOptions& o = {});

/// [NII] BPT: SF, composite, AGN, LINER (AGN only if !split_seyfert_liner) or unclassified.
SpaxelClass classify_bpt_nii(double log_nii_ha, double log_oiii_hb, const ClassifyOptions& o = {});
/// [SII] BPT: SF, AGN, LINER or unclassified. log_sii_ha = log(([SII]6717+6731)/Halpha).
SpaxelClass classify_bpt_sii(double log_sii_ha, double log_oiii_hb, const ClassifyOptions& o = {});
/// WHAN: SF, AGN (strong), LINER (weak AGN), retired, passive or unclassified.
SpaxelClass classify_whan(double log_nii_ha, double ew_halpha_A, double ew_nii_A,
                          const ClassifyOptions& o = {});
/// The paper's rule (DESIGN §6): the [NII] BPT where both of its ratios are finite (all four lines
/// measured), else WHAN.
SpaxelClass classify_spaxel(double log_nii_ha, double log_oiii_hb, double ew_halpha_A,
                            double ew_nii_A, const ClassifyOptions& o = {});

}  // namespace slitstep
