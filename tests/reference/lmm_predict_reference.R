# Reference values for LmmResult.predict(interval=), from lme4 + emmeans on sleepstudy.
#
# Run from the repository root:  Rscript tests/reference/lmm_predict_reference.R
# Reads tests/reference/data/lme4_sleepstudy.csv (exported by lme4_reference.R) and writes
# tests/reference/lmm_predict.json:
# * confidence: emmeans predictions of the population mean at Days = 0, 2.5, 4, 9, 12 with
#   Satterthwaite and Kenward-Roger df (lmer.df), i.e. x' beta, se^2 = x' V x, t interval;
# * prediction: the lme4 FAQ's X V X' formula plus z' Sigma z (Subject intercept and slope)
#   plus sigma^2, normal quantile (a new observation of a new subject).
suppressPackageStartupMessages({
  library(lme4)
  library(emmeans)
  library(jsonlite)
})
here <- "tests/reference"
d <- read.csv(file.path(here, "data", "lme4_sleepstudy.csv"))
days <- c(0, 2.5, 4, 9, 12)
fit <- lmer(Reaction ~ Days + (Days | Subject), data = d, REML = TRUE)
emm <- function(df) {
  e <- as.data.frame(summary(emmeans(fit, ~ Days, at = list(Days = days), lmer.df = df)))
  list(estimate = e$emmean, se = e$SE, df = e$df, lower = e$lower.CL, upper = e$upper.CL)
}
new <- data.frame(Days = days)
mm <- model.matrix(~ Days, new)
pvar <- diag(mm %*% tcrossprod(as.matrix(vcov(fit)), mm))
sig <- as.matrix(VarCorr(fit)$Subject)
zvar <- diag(mm %*% sig %*% t(mm))
tvar <- pvar + zvar + sigma(fit)^2
est <- as.numeric(mm %*% fixef(fit))
# a quadratic fixed part with an uncorrelated slope, ML, for the prediction formula
fit2 <- lmer(Reaction ~ Days + I(Days^2) + (Days || Subject), data = d, REML = FALSE)
mm2 <- model.matrix(~ Days + I(Days^2), new)
vc2 <- as.data.frame(VarCorr(fit2))
sig2 <- diag(c(vc2$vcov[vc2$var1 == "(Intercept)" & !is.na(vc2$var1)],
               vc2$vcov[vc2$var1 == "Days" & !is.na(vc2$var1)]))
z2 <- cbind(1, days)
tvar2 <- diag(mm2 %*% tcrossprod(as.matrix(vcov(fit2)), mm2)) + diag(z2 %*% sig2 %*% t(z2)) +
  sigma(fit2)^2
est2 <- as.numeric(mm2 %*% fixef(fit2))
q <- qnorm(0.975)
out <- list(
  data = "data/lme4_sleepstudy.csv", days = days,
  formula = "Reaction ~ Days + (Days | Subject)",
  confidence_satterthwaite = emm("satterthwaite"),
  confidence_kenward_roger = emm("kenward-roger"),
  prediction = list(estimate = est, se = sqrt(tvar), lower = est - q * sqrt(tvar),
                    upper = est + q * sqrt(tvar)),
  formula_ml = "Reaction ~ Days + I(Days**2) + (Days || Subject)",
  prediction_ml = list(estimate = est2, se = sqrt(tvar2), lower = est2 - q * sqrt(tvar2),
                       upper = est2 + q * sqrt(tvar2)),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  emmeans = as.character(packageVersion("emmeans")))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "lmm_predict.json"))
