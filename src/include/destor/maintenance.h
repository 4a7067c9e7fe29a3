/*
 * maintenance.h — keeping pools healthy: repair, orphan cleanup, and the
 * background worker that runs them on a schedule.
 */
#ifndef DESTOR_MAINTENANCE_H
#define DESTOR_MAINTENANCE_H

extern void maintenance_define_gucs(void);
extern void maintenance_register_worker(void);
extern void maintenance_shmem_request(void);
extern void maintenance_shmem_startup(void);

#endif							/* DESTOR_MAINTENANCE_H */
