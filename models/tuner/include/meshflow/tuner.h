// Hyperparameter search, everything: HyperParameters, oracles, tuners, GridSearchCV and
// RandomizedSearchCV, HParams; the distributed oracle is in meshflow/tuner/distributed.h
// (built where Boost.Asio is found). Link meshflow_tuner.
#pragma once

#include "meshflow/tuner/cross_validation.h"
#include "meshflow/tuner/hparams.h"
#include "meshflow/tuner/hyperparameters.h"
#include "meshflow/tuner/oracle.h"
#include "meshflow/tuner/tuner.h"
