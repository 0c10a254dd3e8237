# Reference values for GlmmResult.predict(type=, interval="confidence"), from lme4 + emmeans.
#
# Run from the repository root:  Rscript tests/reference/glmm_predict_reference.R
# Reads tests/reference/data/glmer_cbpp.csv (exported by glmer_reference.R) and writes
# tests/reference/glmm_predict.json: emmeans of period (population level, random effect 0)
# on the link scale (emmean, SE, asymptotic CI) and on the response scale (prob, SE by the
# delta method, the back-transformed link CI). Fitted with tolPwrss = 1e-12 and a bobyqa
# polish, as the glmer references (see glmer_reference.R).
suppressPackageStartupMessages({
  library(lme4)
  library(emmeans)
  library(jsonlite)
})
here <- "tests/reference"
cb <- read.csv(file.path(here, "data", "glmer_cbpp.csv"), colClasses = c(herd = "character",
               period = "character"))
TOL <- 1e-12
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
m <- glmer(f, data = cb, family = binomial, control = glmerControl(tolPwrss = TOL))
m2 <- update(m, start = list(theta = getME(m, "theta"), fixef = fixef(m)),
             control = glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
                                    optCtrl = list(maxfun = 1e5, rhoend = 1e-10)))
if (logLik(m2) > logLik(m)) m <- m2
lk <- as.data.frame(summary(emmeans(m, ~ period)))
rs <- as.data.frame(summary(emmeans(m, ~ period, type = "response")))
out <- list(
  data = "data/glmer_cbpp.csv", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  period = as.character(lk$period),
  link = list(estimate = lk$emmean, se = lk$SE, lower = lk$asymp.LCL, upper = lk$asymp.UCL),
  response = list(estimate = rs$prob, se = rs$SE, lower = rs$asymp.LCL, upper = rs$asymp.UCL),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  emmeans = as.character(packageVersion("emmeans")))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "glmm_predict.json"))
