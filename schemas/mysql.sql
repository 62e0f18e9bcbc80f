-- kube-event-shipper: the mysql sink's schema, version 1 (MySQL 5.7+/8.x, MariaDB 10.3+).
--
-- The sink creates exactly this at start (shipper/sinks/mysql/schema.py; a test keeps the two equal).
-- Run it by hand where the shipper's user may not create tables:
--
--   mysql -h HOST -u ADMIN -p kube_events < schemas/mysql.sql
--   GRANT SELECT, INSERT, UPDATE ON kube_events.* TO 'shipper'@'%';
--
-- Another table name (?table=NAME): replace kube_event by NAME in the two table names and in
-- the version row below, not in kube_event_shipper_schema.

CREATE TABLE IF NOT EXISTS `kube_event_shipper_schema` (
  `table_name` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `version` INT NOT NULL,
  `migrated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='kube-event-shipper schema versions';

CREATE TABLE IF NOT EXISTS `kube_event` (
  `uid` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'metadata.uid of the Event',
  `resource_version` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'of the version in this row',
  `cluster` VARCHAR(253) NOT NULL DEFAULT '',
  `namespace` VARCHAR(63) NOT NULL DEFAULT '' COMMENT 'involved object (empty for cluster-scoped ones)',
  `kind` VARCHAR(253) NOT NULL DEFAULT '' COMMENT 'involved object',
  `name` VARCHAR(253) NOT NULL DEFAULT '' COMMENT 'involved object',
  `object_uid` VARCHAR(253) DEFAULT NULL,
  `api_version` VARCHAR(253) DEFAULT NULL,
  `field_path` VARCHAR(1024) DEFAULT NULL,
  `type` VARCHAR(64) NOT NULL COMMENT 'Normal or Warning',
  `reason` VARCHAR(255) NOT NULL,
  `message` MEDIUMTEXT COLLATE utf8mb4_unicode_520_ci NOT NULL,
  `action` VARCHAR(255) DEFAULT NULL,
  `reporting_controller` VARCHAR(255) DEFAULT NULL,
  `reporting_instance` VARCHAR(255) DEFAULT NULL,
  `source_component` VARCHAR(255) DEFAULT NULL,
  `source_host` VARCHAR(255) DEFAULT NULL,
  `event_name` VARCHAR(253) NOT NULL,
  `event_namespace` VARCHAR(63) NOT NULL,
  `count` INT UNSIGNED NOT NULL,
  `first_seen` DATETIME(6) NOT NULL COMMENT 'UTC',
  `last_seen` DATETIME(6) NOT NULL COMMENT 'UTC, the latest occurrence',
  `shipped_at` DATETIME(6) NOT NULL COMMENT 'UTC',
  PRIMARY KEY (`uid`),
  KEY `last_seen` (`last_seen`),
  KEY `type_last_seen` (`type`, `last_seen`),
  KEY `namespace_last_seen` (`namespace`, `last_seen`),
  KEY `object_last_seen` (`kind`, `name`, `namespace`, `last_seen`),
  KEY `reason_last_seen` (`reason`, `last_seen`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='Kubernetes events, one row per event (kube-event-shipper)';

CREATE TABLE IF NOT EXISTS `kube_event_occurrence` (
  `uid` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `resource_version` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `count` INT UNSIGNED NOT NULL,
  `occurred_at` DATETIME(6) NOT NULL COMMENT 'UTC, this occurrence (last_seen of the version)',
  `shipped_at` DATETIME(6) NOT NULL COMMENT 'UTC',
  PRIMARY KEY (`uid`, `resource_version`),
  KEY `occurred_at` (`occurred_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='Kubernetes event versions (kube-event-shipper)';

INSERT INTO `kube_event_shipper_schema` (`table_name`, `version`, `migrated_at`)
VALUES ('kube_event', 1, UTC_TIMESTAMP(6))
ON DUPLICATE KEY UPDATE `version` = GREATEST(`version`, VALUES(`version`));
