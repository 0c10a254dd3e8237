# Reference values for alliance.reliability.g_study (generalizability theory), from lme4 and psych.
#
# Run from the repository root:  Rscript tests/reference/gstudy_reference.R
# Reads tests/reference/data/glmer_gstudy.csv (8 coders x 40 sessions, made by
# glmer_reference.R), writes tests/reference/data/gstudy_nested.csv (simulated here) and
# tests/reference/gstudy_reference.json.
#
# 1. Crossed p x i design (sessions x coders, one rating each). For a balanced design the
#    REML variance components equal the ANOVA ones, so the D-study coefficients equal
#    Shrout & Fleiss's ICCs from psych::ICC: G(n) = ICC3k-type consistency for n coders and
#    phi(n) = ICC2k-type absolute agreement (n = 1: ICC3, ICC2; n = 8: ICC3k, ICC2k).
# 2. Sessions nested in clients, crossed with coders: (s:c) x i. lmer fits
#    rating ~ 1 + (1|client) + (1|client:session) + (1|coder) + (1|client:coder); the
#    G coefficients are computed here from Brennan's (2001) formulas:
#    object = session: tau = c + s:c; delta = (c:i + res)/n_i; Delta = delta + i/n_i.
#    object = client:  tau = c; delta = s:c/n_s + c:i/n_i + res/(n_s n_i);
#                      Delta = delta + i/n_i.
suppressPackageStartupMessages({
  library(lme4)
  library(psych)
  library(jsonlite)
})
here <- "tests/reference"
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-12),
                    check.conv.singular = "ignore")

gs <- read.csv(file.path(here, "data", "glmer_gstudy.csv"), stringsAsFactors = FALSE)
wide <- reshape(gs, idvar = "session", timevar = "coder", direction = "wide")
ic <- ICC(as.matrix(wide[, -1]), lmer = FALSE)$results
icc_of <- function(type) ic$ICC[ic$type == type]
g1 <- lmer(rating ~ 1 + (1 | session) + (1 | coder), data = gs, REML = TRUE, control = ctrl)
vc1 <- as.data.frame(VarCorr(g1))
crossed <- list(
  grp = vc1$grp, vcov = vc1$vcov,
  ICC2 = icc_of("ICC2"), ICC3 = icc_of("ICC3"), ICC2k = icc_of("ICC2k"),
  ICC3k = icc_of("ICC3k"), k = 8
)

set.seed(1919)
nc <- 30; ns <- 4; ni <- 3
d <- expand.grid(coder = sprintf("r%d", 1:ni), session = 1:ns, client = sprintf("c%02d", 1:nc),
                 stringsAsFactors = FALSE)
u_c <- rnorm(nc, 0, 0.8); u_sc <- rnorm(nc * ns, 0, 0.6); u_i <- rnorm(ni, 0, 0.3)
u_ci <- rnorm(nc * ni, 0, 0.4)
ci <- as.integer(factor(d$client)); ii <- as.integer(factor(d$coder))
sc <- (ci - 1) * ns + d$session
d$rating <- round(3 + u_c[ci] + u_sc[sc] + u_i[ii] + u_ci[(ci - 1) * ni + ii] +
  rnorm(nrow(d), 0, 0.5), 4)
d <- d[, c("client", "session", "coder", "rating")]
write.csv(d, file.path(here, "data", "gstudy_nested.csv"), row.names = FALSE)
g2 <- lmer(rating ~ 1 + (1 | client) + (1 | client:session) + (1 | coder) + (1 | client:coder),
           data = d, REML = TRUE, control = ctrl)
vc2 <- as.data.frame(VarCorr(g2))
v <- setNames(vc2$vcov, vc2$grp)
coef_session <- function(n_i) {
  tau <- v[["client"]] + v[["client:session"]]
  delta <- (v[["client:coder"]] + v[["Residual"]]) / n_i
  big <- delta + v[["coder"]] / n_i
  c(g = tau / (tau + delta), phi = tau / (tau + big))
}
coef_client <- function(n_s, n_i) {
  tau <- v[["client"]]
  delta <- v[["client:session"]] / n_s + v[["client:coder"]] / n_i + v[["Residual"]] / (n_s * n_i)
  big <- delta + v[["coder"]] / n_i
  c(g = tau / (tau + delta), phi = tau / (tau + big))
}
nested <- list(
  data = "data/gstudy_nested.csv",
  formula = "rating ~ 1 + (1 | client) + (1 | client:session) + (1 | coder) + (1 | client:coder)",
  grp = vc2$grp, vcov = vc2$vcov, loglik = as.numeric(logLik(g2)),
  session_n2 = as.list(coef_session(2)), session_n3 = as.list(coef_session(3)),
  client_s4_i2 = as.list(coef_client(4, 2)), client_s8_i1 = as.list(coef_client(8, 1))
)
write(toJSON(list(crossed = crossed, nested = nested), digits = NA, auto_unbox = TRUE,
             pretty = TRUE), file.path(here, "gstudy_reference.json"))
