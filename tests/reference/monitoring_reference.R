# Reference for monitoring.expected_response: the expected-response growth model
# y ~ intake * log_session + (1 + log_session | client) (REML, lme4) on the post-intake
# sessions, intake = each client's first score centred at the mean intake, and the
# predictive band expected +- qnorm(.90) * sqrt(z' G z + sigma^2 + x' V x) at a grid of
# intake scores and sessions (Finch, Lambert & Schaalje 2001).
# Data: tests/reference/data/monitoring_reference.csv (160 clients x 8 sessions, made by
# _reference() in tests/test_monitoring.py).
# Run: Rscript tests/reference/monitoring_reference.R  (from the repository root)
library(lme4)
library(jsonlite)
d <- read.csv("tests/reference/data/monitoring_reference.csv", colClasses = c(client = "character"))
d <- d[order(d$client, d$session), ]
first <- tapply(d$phq9, d$client, function(v) v[1])
centre <- mean(first)
d$intake <- first[d$client] - centre
d$t <- d$session - tapply(d$session, d$client, min)[d$client] + 1
post <- d[d$t >= 2, ]
post$log_session <- log(post$t)
fit <- lmer(phq9 ~ intake * log_session + (1 + log_session | client), data = post, REML = TRUE)
G <- as.matrix(VarCorr(fit)$client)
V <- as.matrix(vcov(fit))
b <- fixef(fit)
grid <- expand.grid(intake = c(10, 18, 26), session = c(2, 5, 8))
x0 <- grid$intake - centre
ls <- log(grid$session)
X <- cbind(1, x0, ls, x0 * ls)
Z <- cbind(1, ls)
expected <- as.vector(X %*% b)
v <- rowSums((Z %*% G) * Z) + sigma(fit)^2 + rowSums((X %*% V) * X)
half <- qnorm(0.90) * sqrt(v)
out <- list(
  centre = centre,
  coef = unname(b),
  re_cov = unname(G),
  sigma = sigma(fit),
  grid_intake = grid$intake,
  grid_session = grid$session,
  expected = expected,
  lower = expected - half,
  upper = expected + half,
  lme4 = as.character(packageVersion("lme4"))
)
write_json(out, "tests/reference/monitoring_reference.json", digits = 12)
