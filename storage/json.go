package storage

import (
	"encoding/json"
	"fmt"
)

// PutJSON stores v, encoded as JSON, under key in bucket.
func PutJSON(tx Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", bucket, err)
	}
	return tx.Put(bucket, key, b)
}

// GetJSON decodes the JSON record under key in bucket into v; a missing
// record is ErrNotFound, as from Get.
func GetJSON(tx Tx, bucket, key string, v any) error {
	b, err := tx.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s record: %w", bucket, err)
	}
	return nil
}
