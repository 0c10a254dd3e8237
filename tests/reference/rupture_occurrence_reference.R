# Reference values for alliance.models.rupture_occurrence, from lme4's glmer.
#
# Run from the repository root (after python tests/reference/make_rupture_occurrence_data.py):
#   Rscript tests/reference/rupture_occurrence_reference.R
# Writes tests/reference/glmer_rupture_occurrence.json.
# As in glmer_reference.R, the fit uses tolPwrss = 1e-12 (the exact Laplace objective; glmer's
# default PIRLS tolerance leaves an error of about 1e-3 in the deviance) and is polished by a
# restart with bobyqa at tight tolerances.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
here <- "tests/reference"
d <- read.csv(file.path(here, "data", "rupture_occurrence.csv"), colClasses = c(client = "character",
              therapist = "character"))
d$phase <- factor(d$phase, levels = c("exploration", "assessment", "treatment"))
TOL <- 1e-12
f <- rupture ~ prior_negative_therapy + phase + paraphrasing + reflection + confrontation +
  session + (1 | client) + (1 | therapist)
m <- glmer(f, data = d, family = binomial, control = glmerControl(tolPwrss = TOL))
m2 <- tryCatch(update(m, start = list(theta = getME(m, "theta"), fixef = fixef(m)),
                      control = glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
                                             optCtrl = list(maxfun = 1e5, rhoend = 1e-10))),
               error = function(e) m)
if (logLik(m2) > logLik(m)) m <- m2
co <- summary(m)$coefficients
vc <- as.data.frame(VarCorr(m))
out <- list(
  data = "data/rupture_occurrence.csv",
  formula = paste(deparse(f), collapse = " "),
  nobs = nobs(m), ngroups = as.list(ngrps(m)),
  fixef = list(term = rownames(co), estimate = unname(co[, 1]), se = unname(co[, 2]),
               z = unname(co[, 3]), p = unname(co[, 4])),
  varcorr = list(grp = vc$grp, vcov = vc$vcov, sdcor = vc$sdcor),
  loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m),
  singular = isSingular(m), tol_pwrss = TOL,
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "glmer_rupture_occurrence.json"))
