# Reference values for alliance.models.dropout_model: logistic regression of dropout with
# cluster-robust (therapist) standard errors, sandwich::vcovCL(type = "HC1"), on the demo
# study's tables written by make_dropout_data.py.
# Run from the repository root: Rscript tests/reference/sandwich_dropout.R
library(sandwich)
library(jsonlite)

fit_one <- function(file, formula) {
  d <- read.csv(file)
  m <- glm(formula, family = binomial, data = d,
           control = glm.control(epsilon = 1e-14, maxit = 100))
  v <- vcovCL(m, cluster = d$therapist, type = "HC1")
  list(terms = names(coef(m)), estimate = unname(coef(m)), se = unname(sqrt(diag(v))),
       n = nobs(m), loglik = as.numeric(logLik(m)))
}

out <- list(
  logistic = fit_one("tests/reference/data/dropout_logistic.csv",
                     left ~ early_alliance + ruptures),
  person_period = fit_one("tests/reference/data/dropout_person_period.csv",
                          left ~ wai_sr + open_rupture + session),
  versions = list(R = R.version.string, sandwich = as.character(packageVersion("sandwich")))
)
write_json(out, "tests/reference/sandwich_dropout.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
