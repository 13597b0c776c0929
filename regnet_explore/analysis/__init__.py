"""Statistics over populations of sampled models: error EDFs, complexity normalisation, bootstrap bands."""
