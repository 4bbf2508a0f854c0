#pragma once
// slitstep/instruments: NIRSpec detector side of the instrument model — rows along the slit, the
// NRS1/NRS2 gap and red limit as a function of quadrant and shutter index, throughput, dark
// current, read noise, zodiacal background and the conversion between surface brightness and
// electrons. Every number below carries its confidence from the shared reference nirspec.md
// (H official, M derived/peer tool, L read from a figure or third-party default); M and L values
// are configurable defaults (docs/instruments.md).
//
// Units: wavelengths in um; surface brightness in erg s^-1 cm^-2 um^-1 arcsec^-2 (core/units.hpp);
// fluxes in erg s^-1 cm^-2; electron rates in e-/s.
// Failure: DetectorConfig::validate() throws InvalidOptions naming the field, value and rule.
namespace slitstep {

struct DetectorConfig {
  double pixel_y_arcsec = 0.1;             // row pitch along the slit (H: 18 um = 0.100"; SIAF 0.104": M)
  double cross_dispersion_fwhm_px = 1.28;  // measured total FWHM across the slit in 2-D spectra, incl.
                                           // PSF, pixel and IPC (M, msaexp fwhm_data_2024b: 1.27-1.29 px)
  double min_kernel_fwhm_px = 0.3;         // floor of the derived cross-dispersion kernel FWHM (px)
  double bar_edge_tolerance = 0.01;        // rows whose uniform-source illumination (the cross-dispersion
                                           // kernel blurs light onto the bars) is below 1 - this are flagged
                                           // kDqBarShadow: the pipeline's bar-shadow step would rescale them,
                                           // MSA-3D's median of 7 dithers rejected them; 1 = flag only
                                           // geometric bar rows
  bool chip_gap = true;                    // flag and blank the NRS1/NRS2 gap
  double gap_width_um = 0.035;             // gap width (M: ~167 px x ~2.3 A; table ranges 0.02-0.04)
  double gap_center_um = 0.0;              // > 0: override the gap centre read from the table (L)
  double gap_shift_um = 0.0;               // additive correction to the table's gap centre
  bool red_limit = true;                   // columns redder than the shutter's red limit get no light (L)
  double throughput_peak = 0.60;           // absolute end-to-end efficiency at the peak of the shape
                                           // (L: calibrated on the MSA-3D S/N anchor, docs/instruments.md §9)
  double telescope_area_m2 = 25.4;         // JWST collecting area (H)
  double dark_e_per_s = 0.005;             // dark current per pixel (L, HxRG simulator default)
  double read_noise_e = 4.0;               // effective read noise per pixel per exposure after ramp
                                           // fitting (M: the jwst pipeline's VAR_RNOISE in three real
                                           // NRSIRS2 14-group 1021 s MSA exposures, CEERS PID 1345,
                                           // gain ~1: median 3.5-3.9 e-; requirement < 6 e- total)
  double background_mjy_sr = 0.1;          // zodiacal surface brightness, flat in F_nu (L, msaexp sky)
  void validate() const;
};

/// Centre (um) of the NRS1/NRS2 gap for G140H/F100LP, interpolated linearly in shutter_i
/// (1..365) from the nirspec.md §4 table for the quadrant family (Q1/Q2 or Q3/Q4); confidence L
/// (+-0.02 um). Beyond the tabulated shutters the nearest segment is extrapolated; for Q1/Q2 and
/// shutter_i <~ 95 the gap lies below the F100LP cut-on (no gap in band), as the table says.
double chip_gap_center_um(int quadrant, int shutter_i);
/// Red limit (um) of the spectrum on NRS2 for the shutter (table §4, L, +-0.02 um).
double red_limit_um(int quadrant, int shutter_i);

struct ChipGap {
  double lo_um = 0.0;  // wavelength range lost (column-centre wavelengths in [lo, hi] are blanked)
  double hi_um = 0.0;
  bool enabled = false;
};
/// The gap of a slitlet: centre from the table (or the override), +- gap_width_um / 2.
ChipGap chip_gap(const DetectorConfig& c, int quadrant, int shutter_i);

/// msaexp relative G140H/F100LP sensitivity per unit f_nu, peak 1 at 1.15 um (nirspec.md §9, L),
/// linear interpolation, flat extrapolation beyond 0.97 / 1.89 um.
double sensitivity_fnu_shape(double wavelength_um);
/// Relative photon efficiency (electrons per photon): sensitivity_fnu_shape(lambda) * lambda
/// (a per-f_nu sensitivity counts photons / lambda), renormalised to its own peak 1 at 1.2 um
/// (L: shape assumption; 0.655 at 1.0 um, 0.951 at 1.3 um, 0.588 at 1.76 um).
double throughput_shape(double wavelength_um);
/// Absolute end-to-end efficiency throughput_peak * shape (electrons per photon at the telescope).
double throughput(const DetectorConfig& c, double wavelength_um);
/// Electrons per second per (erg s^-1 cm^-2) of flux at wavelength lambda:
/// area * throughput * lambda / (h c).
double electrons_per_erg_cm2(const DetectorConfig& c, double wavelength_um);
/// MJy/sr (F_nu) -> erg s^-1 cm^-2 um^-1 arcsec^-2 (F_lambda) at wavelength lambda.
double mjy_sr_to_sb(double mjy_sr, double wavelength_um);
/// FWHM (px) of the cross-dispersion optical kernel: the measured total minus (in quadrature)
/// the PSF FWHM in rows and the pixel box (Gaussian-equivalent FWHM 2.3548/sqrt(12) = 0.680 px),
/// floored at min_kernel_fwhm_px.
double cross_dispersion_kernel_fwhm_px(const DetectorConfig& c, double psf_fwhm_px);

}  // namespace slitstep
