"""Physical constants and unit conversions used by the analysis (CODATA 2018 values)."""

#: Boltzmann constant in eV/K.
KB_EV_PER_K = 8.617333262e-5
#: Boltzmann constant in J/K.
KB_J_PER_K = 1.380649e-23
#: Elementary charge in C.
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: 1 Å²/ps expressed in cm²/s (1e-16 cm² / 1e-12 s).
A2_PER_PS_TO_CM2_PER_S = 1.0e-4
#: 1 Å³ expressed in cm³.
A3_TO_CM3 = 1.0e-24
#: 1 fs expressed in ps.
FS_TO_PS = 1.0e-3
