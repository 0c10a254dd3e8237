# Latent therapist means (Luedtke et al. 2008): the saturated two-level model of
# alliance.models.therapist_contributions (centering="latent"), fitted by lavaan.
#
# Run from the repository root (after python tests/reference/make_therapist_data.py):
#     Rscript tests/reference/lavaan_therapist_latent.R
# Writes tests/reference/lavaan_therapist_latent.json: for each data set the log-likelihood,
# the within- (client) and between- (therapist) regressions of end on baseline and alliance
# with their standard errors (ML, observed information: lavaan's default for two-level
# models is checked below), and the contextual effect (between - within alliance slope).
# Every variable varies at both levels, so lavaan splits each into a latent therapist mean
# and the client's deviation; fixed.x = FALSE makes all variances and covariances free
# parameters (the model is saturated at both levels). lavaan does not bound variances, so
# an improper solution (a negative therapist variance) is reported as such.
#
# The default of therapist_contributions keeps the baseline a client-level covariate with one
# slope (no therapist part): (end, alliance) are two-level with latent therapist means,
# conditional on baseline. That is a bivariate mixed model, fitted here with nlme (ML):
# random therapist intercepts for end and alliance (unstructured 2 x 2), an unstructured
# 2 x 2 client-level residual (varIdent + corSymm), response-specific baseline slopes. The
# between (therapist) and within (client) slopes of end on alliance are
# Sigma_B[end, alliance] / Sigma_B[alliance, alliance] and the same of Sigma_W; nlme
# bounds Sigma_B to be positive definite, so it is fitted on therapist_small.csv, where the
# solution is proper.
suppressPackageStartupMessages({
  library(nlme)
  library(lavaan)
  library(jsonlite)
})

syntax <- "
level: 1
  end ~ bw_base * baseline + bw * alliance
level: 2
  end ~ bb_base * baseline + bb * alliance
  contextual := bb - bw
"

one <- function(file) {
  d <- read.csv(file.path("tests/reference/data", file))
  out <- list()
  for (info in c("observed", "expected")) {
    fit <- sem(syntax, data = d, cluster = "therapist", fixed.x = FALSE,
               information = info)
    pe <- parameterEstimates(fit)
    pick <- function(lab) {
      row <- pe[pe$label == lab, ]
      list(est = row$est, se = row$se)
    }
    out[[info]] <- list(
      loglik = as.numeric(logLik(fit)),
      alliance_client = pick("bw"), baseline_client = pick("bw_base"),
      alliance_therapist = pick("bb"), baseline_therapist = pick("bb_base"),
      contextual = pick("contextual"),
      converged = lavInspect(fit, "converged")
    )
  }
  out$n <- nrow(d)
  out$therapists <- length(unique(d$therapist))
  out
}

conditional <- function(file) {
  d <- read.csv(file.path("tests/reference/data", file))
  keep <- c("client", "therapist", "baseline")
  long <- rbind(
    data.frame(d[, keep], var = "end", idx = 1L, value = d$end),
    data.frame(d[, keep], var = "alliance", idx = 2L, value = d$alliance)
  )
  long$var <- factor(long$var, levels = c("end", "alliance"))
  long <- long[order(long$therapist, long$client, long$idx), ]
  fit <- lme(value ~ 0 + var + var:baseline, random = ~ 0 + var | therapist, data = long,
             weights = varIdent(form = ~ 1 | var),
             correlation = corSymm(form = ~ idx | therapist / client), method = "ML",
             control = lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10,
                                  msTol = 1e-12, opt = "optim"))
  sb <- unclass(getVarCov(fit))
  sd_w <- fit$sigma * c(1, coef(fit$modelStruct$varStruct, unconstrained = FALSE))
  r_w <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)
  sw <- diag(sd_w^2)
  sw[1, 2] <- sw[2, 1] <- r_w * sd_w[1] * sd_w[2]
  fe <- fixef(fit)
  list(
    loglik = as.numeric(logLik(fit)),
    mu = unname(fe[c("varend", "varalliance")]),
    gamma = unname(fe[c("varend:baseline", "varalliance:baseline")]),
    sigma_b = unname(sb), sigma_w = unname(sw),
    alliance_therapist = sb[1, 2] / sb[2, 2],
    alliance_client = sw[1, 2] / sw[2, 2]
  )
}

res <- list(
  demo = one("therapist_demo.csv"),
  small = one("therapist_small.csv"),
  small_conditional = conditional("therapist_small.csv"),
  lavaan = as.character(packageVersion("lavaan")),
  nlme = as.character(packageVersion("nlme"))
)
write_json(res, "tests/reference/lavaan_therapist_latent.json", auto_unbox = TRUE,
           digits = 12, pretty = TRUE)
