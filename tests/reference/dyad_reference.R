# Reference values for alliance.dyad (agreement, rsa, apim) on the simulated dyads written by
# make_dyad_data.py (tests/reference/data/dyad_sessions.csv, dyad_clients.csv).
# Run from the repository root: Rscript tests/reference/dyad_reference.R
#
# RSA: lm() and vcov(); the surface parameters a1..a5 as c'b with SE sqrt(c' V c); the
# stationary point and principal axes (Edwards & Parry 1993) with delta-method SEs from the
# symbolic derivatives of deriv(). With a therapist random intercept: lmer (REML) and
# lmerTest::contest (Satterthwaite df). APIM: lmer with lmerTest. Agreement: the
# within-client correlation from the person-mean centred ratings (as rmcorr), the
# between-client correlation of client means, lmer of the difference on session (random
# intercept: the simulated data have no slope variance, and a singular fit is no reference).
suppressMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

cl <- read.csv("tests/reference/data/dyad_clients.csv")
se <- read.csv("tests/reference/data/dyad_sessions.csv")

W <- rbind(a1 = c(0, 1, 1, 0, 0, 0), a2 = c(0, 0, 0, 1, 1, 1), a3 = c(0, 1, -1, 0, 0, 0),
           a4 = c(0, 0, 0, 1, -1, 1), a5 = c(0, 0, 0, 1, 0, -1))

principal <- expression(
  X0 = (b2 * b4 - 2 * b1 * b5) / (4 * b3 * b5 - b4^2),
  Y0 = (b1 * b4 - 2 * b2 * b3) / (4 * b3 * b5 - b4^2),
  p10 = (b1 * b4 - 2 * b2 * b3) / (4 * b3 * b5 - b4^2) -
    (b5 - b3 + sqrt((b3 - b5)^2 + b4^2)) / b4 * (b2 * b4 - 2 * b1 * b5) / (4 * b3 * b5 - b4^2),
  p11 = (b5 - b3 + sqrt((b3 - b5)^2 + b4^2)) / b4,
  p20 = (b1 * b4 - 2 * b2 * b3) / (4 * b3 * b5 - b4^2) -
    (b5 - b3 - sqrt((b3 - b5)^2 + b4^2)) / b4 * (b2 * b4 - 2 * b1 * b5) / (4 * b3 * b5 - b4^2),
  p21 = (b5 - b3 - sqrt((b3 - b5)^2 + b4^2)) / b4
)

delta <- function(b, V) {
  env <- list(b1 = b[2], b2 = b[3], b3 = b[4], b4 = b[5], b5 = b[6])
  out <- list()
  for (nm in names(principal)) {
    g <- attr(eval(deriv(principal[[nm]], c("b1", "b2", "b3", "b4", "b5")), env), "gradient")
    g <- c(0, as.numeric(g))
    out[[nm]] <- list(estimate = eval(principal[[nm]], env), se = sqrt(drop(t(g) %*% V %*% g)))
  }
  out
}

centre <- mean(c(cl$wai_client, cl$wai_therapist))
cl$x <- cl$wai_client - centre
cl$y <- cl$wai_therapist - centre

# ---- RSA by OLS
m <- lm(outcome ~ x + y + I(x^2) + I(x * y) + I(y^2), data = cl)
b <- unname(coef(m)); V <- unname(vcov(m))
surface <- lapply(rownames(W), function(a) {
  w <- W[a, ]; est <- sum(w * b); s <- sqrt(drop(t(w) %*% V %*% w))
  list(term = a, estimate = est, se = s, df = df.residual(m), statistic = est / s,
       p = 2 * pt(-abs(est / s), df.residual(m)))
})
rsa_ols <- list(centre = centre, coef = b, se = unname(sqrt(diag(V))), df = df.residual(m),
                surface = surface, stationary = delta(b, V))

# ---- RSA with a therapist random intercept
mm <- lmer(outcome ~ x + y + I(x^2) + I(x * y) + I(y^2) + (1 | therapist), data = cl,
           REML = TRUE, control = lmerControl(optimizer = "bobyqa",
                                              optCtrl = list(rhobeg = 2e-2, rhoend = 2e-9)))
bm <- unname(fixef(mm)); Vm <- unname(as.matrix(vcov(mm)))
surface_m <- lapply(rownames(W), function(a) {
  ct <- contest(mm, matrix(W[a, ], nrow = 1), joint = FALSE)
  list(term = a, estimate = ct$Estimate, se = ct[["Std. Error"]], df = ct$df,
       statistic = ct[["t value"]], p = ct[["Pr(>|t|)"]])
})
rsa_lmm <- list(coef = bm, se = unname(sqrt(diag(Vm))), surface = surface_m,
                stationary = delta(bm, Vm), sigma = sigma(mm),
                therapist_sd = attr(VarCorr(mm)$therapist, "stddev")[[1]])

# ---- APIM (one-with-many)
decompose <- function(v, g) {
  tm <- ave(v, g)
  list(within = v - tm, between = tm - mean(v))
}
cc <- decompose(cl$wai_client, cl$therapist); tt <- decompose(cl$wai_therapist, cl$therapist)
ap <- data.frame(z = cl$outcome, therapist = cl$therapist, c_within = cc$within,
                 c_between = cc$between, t_within = tt$within, t_between = tt$between)
ma <- lmer(z ~ c_within + c_between + t_within + t_between + (1 | therapist), data = ap,
           REML = TRUE, control = lmerControl(optimizer = "bobyqa",
                                              optCtrl = list(rhobeg = 2e-2, rhoend = 2e-9)))
sa <- summary(ma)$coefficients
apim <- list(terms = rownames(sa), estimate = unname(sa[, "Estimate"]),
             se = unname(sa[, "Std. Error"]), df = unname(sa[, "df"]),
             p = unname(sa[, "Pr(>|t|)"]), loglik = as.numeric(logLik(ma)),
             vcov = as.data.frame(VarCorr(ma))$vcov)

# ---- agreement
se$cx <- se$wai_client - ave(se$wai_client, se$client)
se$cy <- se$wai_therapist - ave(se$wai_therapist, se$client)
within_r <- sum(se$cx * se$cy) / sqrt(sum(se$cx^2) * sum(se$cy^2))
k <- length(unique(se$client)); n <- nrow(se)
means <- aggregate(cbind(wai_client, wai_therapist) ~ client, data = se, FUN = mean)
between <- cor.test(means$wai_client, means$wai_therapist)
se$difference <- se$wai_client - se$wai_therapist
se$session_c <- se$session - mean(se$session)
md <- lmer(difference ~ session_c + (1 | client), data = se, REML = TRUE,
           control = lmerControl(optimizer = "bobyqa",
                                 optCtrl = list(rhobeg = 2e-2, rhoend = 2e-9)))
sd_ <- summary(md)$coefficients
# the repeated-measures correlation as rmcorr computes it: lm(y ~ client + x), sign * sqrt(SS)
fit_rm <- lm(wai_therapist ~ factor(client) + wai_client, data = se)
ss <- anova(fit_rm)
rm_r <- sign(coef(fit_rm)["wai_client"]) *
  sqrt(ss["wai_client", "Sum Sq"] / (ss["wai_client", "Sum Sq"] + ss["Residuals", "Sum Sq"]))
agreement <- list(within_r = within_r, within_r_rmcorr = unname(rm_r), within_df = n - k - 1,
                  between_r = unname(between$estimate), between_p = between$p.value,
                  between_ci = unname(between$conf.int[1:2]),
                  difference = list(terms = rownames(sd_), estimate = unname(sd_[, "Estimate"]),
                                    se = unname(sd_[, "Std. Error"]), df = unname(sd_[, "df"])),
                  difference_singular = isSingular(md))

out <- list(rsa_ols = rsa_ols, rsa_lmm = rsa_lmm, apim = apim, agreement = agreement,
            versions = list(R = R.version.string,
                            lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest"))))
write_json(out, "tests/reference/dyad_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
