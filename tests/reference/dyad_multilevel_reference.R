# Reference values for alliance.dyad.rsa(level="session") (multilevel polynomial RSA) and
# alliance.dyad.apim(therapist_outcome=) (the two-outcome one-with-many APIM).
# Run from the repository root: Rscript tests/reference/dyad_multilevel_reference.R
# Simulates and writes tests/reference/data/dyad_ml_sessions.csv and dyad_two_outcome.csv,
# and writes tests/reference/dyad_multilevel_reference.json.
#
# Session-level RSA: per client the centre m_i is the mean of (x + y) / 2 over the client's
# sessions; within terms xw = x - m_i, yw = y - m_i and their squares and product; between
# terms xb = mean_i(x) - C, yb = mean_i(y) - C with C the mean of the m_i, and their squares
# and product; lmer (REML) with a client (and a therapist) random intercept; surfaces by
# lmerTest::contest (Satterthwaite df).
# Two-outcome APIM: the client-rated and the therapist-rated outcome stacked, an intercept
# and four slopes per outcome, a 2 x 2 therapist random-intercept covariance, and a 2 x 2
# client-level residual covariance (varIdent by outcome, corCompSymm within client): nlme::lme
# (REML), as Kenny, Kashy & Cook (2006, ch. 10) fit dyadic data with two outcomes.
suppressMessages({
  library(lme4)
  library(lmerTest)
  library(nlme, exclude = "lmList")
  library(jsonlite)
})
here <- "tests/reference"

# ---- multilevel RSA data: 12 therapists x 5 clients x 8 sessions
set.seed(1916)
nt <- 12; nc <- 60; ns <- 8
cl <- data.frame(client = sprintf("C%03d", 1:nc), therapist = sprintf("T%02d", rep(1:nt, each = 5)))
cl$ux <- rnorm(nc, 0, 0.5); cl$uy <- 0.4 * cl$ux + rnorm(nc, 0, 0.4)
cl$uz <- rnorm(nc, 0, 0.8)
ut <- rnorm(nt, 0, 0.5)
d <- cl[rep(1:nc, each = ns), ]
d$session <- rep(1:ns, nc)
d$x <- round(4 + d$ux + rnorm(nrow(d), 0, 0.5), 4)
d$y <- round(4.2 + d$uy + 0.3 * (d$x - 4 - d$ux) + rnorm(nrow(d), 0, 0.5), 4)
ti <- as.integer(factor(d$therapist))
d$z <- round(10 + d$uz + ut[ti] + 0.5 * (d$x - 4) - 0.8 * (d$x - d$y)^2 +
  0.3 * (d$ux - d$uy) + rnorm(nrow(d), 0, 0.7), 4)
d <- d[, c("client", "therapist", "session", "x", "y", "z")]
write.csv(d, file.path(here, "data", "dyad_ml_sessions.csv"), row.names = FALSE)

m_i <- ave((d$x + d$y) / 2, d$client)
xbar <- ave(d$x, d$client); ybar <- ave(d$y, d$client)
C <- mean(tapply((d$x + d$y) / 2, d$client, mean))
f <- data.frame(z = d$z, client = d$client, therapist = d$therapist,
                xw = d$x - m_i, yw = d$y - m_i, xb = xbar - C, yb = ybar - C)
f$xw2 <- f$xw^2; f$xwyw <- f$xw * f$yw; f$yw2 <- f$yw^2
f$xb2 <- f$xb^2; f$xbyb <- f$xb * f$yb; f$yb2 <- f$yb^2
W <- rbind(a1 = c(1, 1, 0, 0, 0), a2 = c(0, 0, 1, 1, 1), a3 = c(1, -1, 0, 0, 0),
           a4 = c(0, 0, 1, -1, 1), a5 = c(0, 0, 1, 0, -1))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-2, rhoend = 2e-10))
fit_ml <- function(formula) {
  m <- lmer(formula, data = f, REML = TRUE, control = ctrl)
  surf <- function(offset) lapply(rownames(W), function(a) {
    L <- matrix(0, 1, 11); L[1, offset + 1:5] <- W[a, ]
    ct <- contest(m, L, joint = FALSE)
    list(term = a, estimate = ct$Estimate, se = ct[["Std. Error"]], df = ct$df,
         p = ct[["Pr(>|t|)"]])
  })
  co <- summary(m)$coefficients
  list(centre = C, terms = rownames(co), estimate = unname(co[, 1]), se = unname(co[, 2]),
       df = unname(co[, "df"]), loglik = as.numeric(logLik(m)),
       vcov = as.data.frame(VarCorr(m))$vcov, grp = as.data.frame(VarCorr(m))$grp,
       within = surf(1), between = surf(6))
}
rhs <- "z ~ xw + yw + xw2 + xwyw + yw2 + xb + yb + xb2 + xbyb + yb2"
rsa_client <- fit_ml(as.formula(paste(rhs, "+ (1 | client)")))
rsa_therapist <- fit_ml(as.formula(paste(rhs, "+ (1 | client) + (1 | therapist)")))

# ---- two-outcome APIM data: 15 therapists x 8 clients
set.seed(1917)
nt <- 15; nc <- 120
a <- data.frame(client = sprintf("K%03d", 1:nc), therapist = sprintf("T%02d", rep(1:nt, each = 8)))
tb <- rnorm(nt, 0, 0.4)[as.integer(factor(a$therapist))]
a$wai_client <- round(5 + rnorm(nt, 0, 0.3)[as.integer(factor(a$therapist))] + rnorm(nc, 0, 0.6), 4)
a$wai_therapist <- round(4.8 + tb + 0.4 * (a$wai_client - 5) + rnorm(nc, 0, 0.5), 4)
u <- cbind(rnorm(nt, 0, 0.6), rnorm(nt, 0, 0.5))[as.integer(factor(a$therapist)), ]
e1 <- rnorm(nc); e2 <- 0.5 * e1 + sqrt(1 - 0.25) * rnorm(nc)
a$outcome_client <- round(10 + 1.0 * (a$wai_client - 5) + 0.4 * (a$wai_therapist - 4.8) + u[, 1] + e1, 4)
a$outcome_therapist <- round(8 + 0.3 * (a$wai_client - 5) + 0.9 * (a$wai_therapist - 4.8) + u[, 2] + 0.8 * e2, 4)
write.csv(a, file.path(here, "data", "dyad_two_outcome.csv"), row.names = FALSE)
dec <- function(v, g) { tm <- ave(v, g); list(w = v - tm, b = tm - mean(v)) }
cc <- dec(a$wai_client, a$therapist); tt <- dec(a$wai_therapist, a$therapist)
base <- data.frame(client = a$client, therapist = a$therapist, c_within = cc$w,
                   c_between = cc$b, t_within = tt$w, t_between = tt$b)
long <- rbind(cbind(base, z = a$outcome_client, role = "client"),
              cbind(base, z = a$outcome_therapist, role = "therapist"))
long <- long[order(long$therapist, long$client, long$role), ]
long$is_c <- as.numeric(long$role == "client"); long$is_t <- 1 - long$is_c
m2 <- lme(z ~ 0 + is_c + is_t + is_c:c_within + is_c:c_between + is_c:t_within +
            is_c:t_between + is_t:c_within + is_t:c_between + is_t:t_within + is_t:t_between,
          random = ~ 0 + is_c + is_t | therapist,
          correlation = corCompSymm(form = ~ 1 | therapist / client),
          weights = varIdent(form = ~ 1 | role), data = long, method = "REML",
          control = lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10,
                               msTol = 1e-12, niterEM = 100))
tab <- summary(m2)$tTable
G <- getVarCov(m2)
sig <- m2$sigma
ratio <- coef(m2$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
rho <- coef(m2$modelStruct$corStruct, unconstrained = FALSE)
apim2 <- list(terms = rownames(tab), estimate = unname(tab[, "Value"]),
              se = unname(tab[, "Std.Error"]), loglik = as.numeric(logLik(m2)),
              therapist_cov = matrix(as.numeric(G), 2, 2),
              residual_sd = unname(sig * ratio[c("client", "therapist")]),
              residual_cor = unname(rho))
write_json(list(rsa_client = rsa_client, rsa_therapist = rsa_therapist, apim2 = apim2,
                versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                                nlme = as.character(packageVersion("nlme")))),
           file.path(here, "dyad_multilevel_reference.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
