export { compareCanonical, isPaying, timed, toIso, DAY_MS, type TimedTouchpoint } from './canonical-order.js';
export { PeriodCalendar } from './periods.js';
export {
  CustomerFold,
  foldCustomer,
  type CohortFacts,
  type CustomerInput,
  type CustomerSnapshot,
  type LinkedImpression,
  type PaymentFact,
} from './customer-fold.js';
export { cohortFactsAsOf, recordedCohortFacts, rowAsOf, type CustomerHistory } from './customer-history.js';
export { addToCell, CohortCells, cohortRows, cohortRowsByChannel, cohortRowsFromCells, emptyCell, isEmptyCell, sortedRevenue, type CohortCell } from './cohorts.js';
export { cohortSteps, firstStepChange, type CohortStep } from './cohort-steps.js';
export { channelEconomics, type ImpressionFact } from './channel-economics.js';
export { churnRows, cohortFactsOfHistories, groupByCustomer, historiesOf, stageRows, linksEarlier, projectAsOf, projectHistoriesAsOf, referralRows, rollingChurnRateOf, type LinkingRegistration, type Projection } from './population.js';
export { historyChange, type HistoryChange, type RecordedLifecycleEvent } from './lifecycle-history.js';
