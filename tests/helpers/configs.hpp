#pragma once
// Shared simulation configurations of the tests (header-only).
//  * small_slitstep_config(): 3 steps x 2 dithers of the default slitlet, 0.04" render pixels over
//    the field the pattern needs, 20 km/s channels, only [NII]6548 + Halpha + [NII]6584 and no
//    continuum windows, the default galaxy at inclination 55 deg — a cheap slit-stepping chain.
//  * msa3d_default_config(): the default configuration (MSA-3D 9 x 7 pattern, 0.02" pixels) with
//    the render field set to what the pattern needs.
#include "sim/simulate.hpp"

namespace slitstep::test {

inline SimulationConfig small_slitstep_config() {
  SimulationConfig c;
  c.instrument.pattern.steps_x_arcsec = {-0.2, 0.0, 0.2};
  c.instrument.pattern.dithers_y_arcsec = {-0.075, 0.075};
  c.scene.render.pixel_arcsec = 0.04;
  const FieldOfView f = required_field_of_view(c.instrument, c.scene.render.pixel_arcsec);
  c.scene.render.fov_x_arcsec = f.x_arcsec;
  c.scene.render.fov_y_arcsec = f.y_arcsec;
  c.scene.render.channel_kms = 20.0;
  c.scene.render.lines = {LineId::kNII6548, LineId::kHalpha, LineId::kNII6584};
  c.scene.render.continuum_windows = false;
  c.scene.galaxy.inclination_deg = 55.0;
  return c;
}

inline SimulationConfig msa3d_default_config() {
  SimulationConfig c;
  const FieldOfView f = required_field_of_view(c.instrument, c.scene.render.pixel_arcsec);
  c.scene.render.fov_x_arcsec = f.x_arcsec;
  c.scene.render.fov_y_arcsec = f.y_arcsec;
  return c;
}

}  // namespace slitstep::test
