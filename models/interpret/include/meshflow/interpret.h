// Interpretability, everything: gradient attributions, LIME and kernel SHAP, heatmap pictures.
// Link meshflow_interpret.
#pragma once

#include "meshflow/interpret/attribution.h"
#include "meshflow/interpret/heatmap.h"
#include "meshflow/interpret/lime.h"
